package netmgr

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"berth/api"
	"berth/store"
)

// optsRig restarts Managers with changing daemon options over one store and fake kernel,
// as a daemon restarted with other flags.
type optsRig struct {
	t   *testing.T
	st  *store.Store
	k   *fakeKernel
	dir string
	ops []string // the fake kernel's changes since the last start
}

func newOptsRig(t *testing.T) *optsRig {
	r := &optsRig{t: t, st: store.NewMemory(), k: newFakeKernel(), dir: t.TempDir()}
	r.k.done = func(op string) { r.ops = append(r.ops, op) }
	return r
}

// start restores a Manager configured by cfg (Store, Kernel, Log and dirs are filled in).
func (r *optsRig) start(cfg Config) (*Manager, error) {
	r.t.Helper()
	r.ops = nil
	cfg.Store, cfg.Kernel = r.st, r.k
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.NetNSDir, cfg.FilesDir, cfg.RunDir = r.dir+"/netns", r.dir+"/etc", r.dir+"/state"
	m := New(cfg)
	return m, m.Restore(r.t.Context())
}

func (r *optsRig) mustStart(cfg Config) *Manager {
	r.t.Helper()
	m, err := r.start(cfg)
	if err != nil {
		r.t.Fatalf("Restore: %v", err)
	}
	return m
}

func (r *optsRig) bridge() *store.Network {
	r.t.Helper()
	n, err := r.st.Snapshot().NetworkByName(DefaultNetwork)
	if err != nil {
		r.t.Fatalf("default bridge: %v", err)
	}
	return n
}

func (r *optsRig) deleted() bool {
	for _, op := range r.ops {
		if op == "DeleteLink" {
			return true
		}
	}
	return false
}

// sandboxAddr creates a sandbox on net and returns its IPv4 and IPv6 addresses there.
func sandboxAddr(t *testing.T, m *Manager, name, net string) (v4, v6 netip.Addr) {
	t.Helper()
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: name, Networks: []string{net}}); err != nil {
		t.Fatalf("create sandbox %s: %v", name, err)
	}
	snap := m.cfg.Store.Snapshot()
	sb, err := snap.SandboxByName(name)
	if err != nil {
		t.Fatal(err)
	}
	eps := snap.SandboxEndpoints(sb.ID)
	if len(eps) != 1 {
		t.Fatalf("sandbox %s: %d endpoints, want 1", name, len(eps))
	}
	return eps[0].IPv4, eps[0].IPv6
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDefaultBridgeBIP(t *testing.T) {
	r := newOptsRig(t)
	m := r.mustStart(Config{DefaultBridge: BridgeDefaults{BIP: mustPrefix("192.168.5.1/24"),
		FixedCIDR: mustPrefix("192.168.5.128/25"), MTU: 1400, NoIPMasq: true}})
	n := r.bridge()
	want := store.Subnet{Subnet: mustPrefix("192.168.5.0/24"), Gateway: netip.MustParseAddr("192.168.5.1"),
		IPRange: mustPrefix("192.168.5.128/25")}
	if len(n.Subnets) != 1 || n.Subnets[0] != want {
		t.Errorf("subnets: got %+v, want [%+v]", n.Subnets, want)
	}
	if n.MTU != 1400 || n.Options[OptMTU] != "1400" || n.Options[OptMasquerade] != "false" {
		t.Errorf("got MTU %d, options %v; want 1400, mtu 1400 and masquerade false", n.MTU, n.Options)
	}
	if v4, _ := sandboxAddr(t, m, "web", DefaultNetwork); v4 != netip.MustParseAddr("192.168.5.128") {
		t.Errorf("first address: got %s, want 192.168.5.128 (the first of --fixed-cidr)", v4)
	}
	// --ip-masq=false is the default bridge's only, as in dockerd (checked: a network made
	// under dockerd --ip-masq=false still gets its MASQUERADE rule).
	if _, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	for _, fn := range firewallState(r.st.Snapshot()).Networks {
		if want := fn.Bridge != DefaultBridge; fn.Masquerade != want {
			t.Errorf("bridge %s: masquerade %v, want %v", fn.Bridge, fn.Masquerade, want)
		}
	}
}

func TestDefaultBridgeBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   BridgeDefaults
		field string
	}{
		{"fixed-cidr outside bip", BridgeDefaults{BIP: mustPrefix("10.5.0.1/24"), FixedCIDR: mustPrefix("10.6.7.0/24")}, "fixed-cidr"},
		{"fixed-cidr wider than bip", BridgeDefaults{BIP: mustPrefix("10.5.0.1/24"), FixedCIDR: mustPrefix("10.5.0.0/16")}, "fixed-cidr"},
		// Without --bip the subnet is the pools' first, 172.17.0.0/16.
		{"fixed-cidr outside the picked subnet", BridgeDefaults{FixedCIDR: mustPrefix("10.9.0.0/24")}, "fixed-cidr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newOptsRig(t).start(Config{DefaultBridge: tc.cfg})
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != tc.field {
				t.Errorf("got %v, want an invalid %s", err, tc.field)
			}
		})
	}
}

func TestDefaultBridgeIPv6(t *testing.T) {
	r := newOptsRig(t)
	m := r.mustStart(Config{DefaultBridge: BridgeDefaults{IPv6: true, FixedCIDRv6: mustPrefix("2001:db8:1::/64")}})
	n := r.bridge()
	if !n.IPv6 || len(n.Subnets) != 2 || n.Subnets[1].Subnet != mustPrefix("2001:db8:1::/64") ||
		n.Subnets[1].Gateway != netip.MustParseAddr("2001:db8:1::1") {
		t.Fatalf("got IPv6 %v, subnets %+v; want 2001:db8:1::/64 with gateway ::1", n.IPv6, n.Subnets)
	}
	if _, v6 := sandboxAddr(t, m, "web", DefaultNetwork); v6 != netip.MustParseAddr("2001:db8:1::2") {
		t.Errorf("sandbox IPv6: got %s, want 2001:db8:1::2", v6)
	}
}

func TestDefaultAddressPools(t *testing.T) {
	r := newOptsRig(t)
	m := r.mustStart(Config{Pools: []Pool{{mustPrefix("10.10.0.0/23"), 24}, {mustPrefix("10.20.0.0/16"), 20}}})
	if got := r.bridge().Subnets[0].Subnet; got != mustPrefix("10.10.0.0/24") {
		t.Errorf("default bridge without --bip: got %s, want 10.10.0.0/24 (the pools', not 172.17.0.0/16)", got)
	}
	for _, want := range []string{"10.10.1.0/24", "10.20.0.0/20", "10.20.16.0/20"} {
		n, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "n" + want[3:5] + want[6:8]})
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Subnets[0].Subnet; got != mustPrefix(want) {
			t.Errorf("network %s: got %s, want %s", n.Name, got, want)
		}
	}
	// A route over the next subnet makes it skipped, as Docker's pools do.
	r.k.routes = []netip.Prefix{mustPrefix("10.20.32.0/24")}
	n, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "routed"})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Subnets[0].Subnet; got != mustPrefix("10.20.48.0/20") {
		t.Errorf("after a route: got %s, want 10.20.48.0/20", got)
	}
	full := newOptsRig(t)
	m = full.mustStart(Config{Pools: []Pool{{mustPrefix("10.30.0.0/24"), 24}}})
	if _, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "nospace"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("create with the only pool used by the default bridge: got %v, want a conflict", err)
	}
}

func TestDefaultBridgeRestart(t *testing.T) {
	r := newOptsRig(t)
	r.mustStart(Config{})
	first := r.bridge()
	if first.Subnets[0].Subnet != mustPrefix("172.17.0.0/16") || first.MTU != 0 {
		t.Fatalf("default: got %+v MTU %d, want 172.17.0.0/16 and the kernel's MTU", first.Subnets, first.MTU)
	}
	r.mustStart(Config{})
	if r.deleted() || r.bridge().Subnets[0] != first.Subnets[0] {
		t.Errorf("unchanged restart: bridge deleted %v, subnets %+v", r.deleted(), r.bridge().Subnets)
	}

	// A new --bip and --mtu with no sandbox on the bridge: re-made with them, same ID.
	opts := Config{DefaultBridge: BridgeDefaults{BIP: mustPrefix("10.5.0.1/16"), MTU: 1450}}
	m := r.mustStart(opts)
	n := r.bridge()
	if !r.deleted() || n.ID != first.ID || n.Subnets[0].Subnet != mustPrefix("10.5.0.0/16") || n.MTU != 1450 {
		t.Errorf("changed --bip: deleted %v, ID kept %v, subnets %+v, MTU %d", r.deleted(), n.ID == first.ID, n.Subnets, n.MTU)
	}
	sandboxAddr(t, m, "web", DefaultNetwork)

	// With a sandbox on it, the bridge keeps its addressing: the sandbox stays reachable.
	m = r.mustStart(Config{DefaultBridge: BridgeDefaults{BIP: mustPrefix("10.6.0.1/24")}})
	n = r.bridge()
	if r.deleted() || n.Subnets[0].Subnet != mustPrefix("10.5.0.0/16") || n.MTU != 1450 {
		t.Errorf("changed --bip under a sandbox: deleted %v, subnets %+v, MTU %d; want the old ones kept", r.deleted(), n.Subnets, n.MTU)
	}
	if _, err := r.st.Snapshot().SandboxByName("web"); err != nil {
		t.Fatalf("sandbox lost: %v", err)
	}
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "web", Force: true}); err != nil {
		t.Fatal(err)
	}
	m.Settle()

	// Gone: the next start applies it. Dropping --bip keeps the subnet (dockerd keeps
	// docker0's address), dropping --mtu goes back to the kernel's.
	r.mustStart(Config{DefaultBridge: BridgeDefaults{BIP: mustPrefix("10.6.0.1/24")}})
	if n := r.bridge(); !r.deleted() || n.Subnets[0].Subnet != mustPrefix("10.6.0.0/24") || n.MTU != 0 || n.Options[OptMTU] != "" {
		t.Errorf("after the sandbox left: deleted %v, subnets %+v, MTU %d, options %v", r.deleted(), n.Subnets, n.MTU, n.Options)
	}
	r.mustStart(Config{})
	if n := r.bridge(); r.deleted() || n.Subnets[0].Subnet != mustPrefix("10.6.0.0/24") {
		t.Errorf("--bip dropped: deleted %v, subnets %+v; want 10.6.0.0/24 kept", r.deleted(), n.Subnets)
	}
	// --default-address-pool not holding the recorded subnet: one from the pools.
	r.mustStart(Config{Pools: []Pool{{mustPrefix("10.40.0.0/16"), 24}}})
	if n := r.bridge(); !r.deleted() || n.Subnets[0].Subnet != mustPrefix("10.40.0.0/24") {
		t.Errorf("new pools: deleted %v, subnets %+v; want 10.40.0.0/24", r.deleted(), n.Subnets)
	}
}

// A configuration network holds no addresses (it has no bridge and no endpoints), so its
// subnet does not keep the default bridge from taking --bip there, as for any network.
func TestDefaultBridgeBIPOverConfigOnly(t *testing.T) {
	r := newOptsRig(t)
	m := r.mustStart(Config{})
	mustNetwork(t, m, api.NetworkCreate{Name: "cfg", ConfigOnly: true, Subnets: []string{"10.50.0.0/24"}})
	if _, err := r.start(Config{DefaultBridge: BridgeDefaults{BIP: mustPrefix("10.50.0.1/24")}}); err != nil {
		t.Fatalf("restart with --bip in a configuration network's subnet: %v", err)
	}
	if got := r.bridge().Subnets[0].Subnet; got != mustPrefix("10.50.0.0/24") {
		t.Errorf("default bridge subnet %s, want 10.50.0.0/24", got)
	}
}

// A start that fails to delete the bridge it re-makes (or is killed right then) leaves the
// record as it was, so the next start re-makes the bridge again: were the record written
// first, that start would find nothing to do and leave the old MTU on the bridge.
func TestDefaultBridgeRemakeRetried(t *testing.T) {
	r := newOptsRig(t)
	r.mustStart(Config{DefaultBridge: BridgeDefaults{MTU: 1450}})
	r.k.failOn = "DeleteLink"
	if _, err := r.start(Config{}); err == nil {
		t.Fatal("start with the bridge's deletion failing: no error")
	}
	if n := r.bridge(); n.MTU != 1450 {
		t.Errorf("after the failed start: recorded MTU %d, want 1450 (the bridge still has it)", n.MTU)
	}
	r.mustStart(Config{})
	if n := r.bridge(); !r.deleted() || n.MTU != 0 {
		t.Errorf("next start: bridge deleted %v, MTU %d; want it re-made with the kernel's MTU", r.deleted(), n.MTU)
	}
}
