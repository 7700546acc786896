package netmgr

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"berth/api"
	"berth/store"
)

func mustNetwork(t *testing.T, m *Manager, req api.NetworkCreate) *store.Network {
	t.Helper()
	n, err := m.CreateNetwork(t.Context(), req)
	if err != nil {
		t.Fatalf("CreateNetwork(%+v): %v", req, err)
	}
	return n
}

func mustSandbox(t *testing.T, m *Manager, req api.SandboxCreate) (*store.Sandbox, *store.Endpoint) {
	t.Helper()
	sb, err := m.CreateSandbox(t.Context(), req)
	if err != nil {
		t.Fatalf("CreateSandbox(%+v): %v", req, err)
	}
	eps := m.cfg.Store.Snapshot().SandboxEndpoints(sb.ID)
	if len(eps) == 0 {
		return sb, nil
	}
	return sb, eps[0]
}

func TestSubnetPool(t *testing.T) {
	m, k := newTestManager(t)
	bridge, _ := m.cfg.Store.Snapshot().NetworkByName("bridge")
	if got, want := bridge.Subnets[0].Subnet.String(), "172.17.0.0/16"; got != want {
		t.Fatalf("default bridge subnet = %s, want %s", got, want)
	}
	// A route of the daemon's netns blocks its pool.
	k.routes = []netip.Prefix{netip.MustParsePrefix("172.18.5.0/24")}
	n := mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	if got, want := n.Subnets[0].Subnet.String(), "172.19.0.0/16"; got != want {
		t.Errorf("auto subnet = %s, want %s (172.18/16 overlaps a route)", got, want)
	}
	if got, want := n.Subnets[0].Gateway.String(), "172.19.0.1"; got != want {
		t.Errorf("gateway = %s, want %s", got, want)
	}
	if !strings.HasPrefix(n.Bridge, "br-") || len(n.Bridge) != 15 || n.Bridge != "br-"+n.ID[:12] {
		t.Errorf("bridge name = %q, want br-<12 hex of id>", n.Bridge)
	}
	// Exhaust the /16s: the next ones come from 192.168.0.0/16 in /20 steps.
	for i := 0; i < 12; i++ {
		mustNetwork(t, m, api.NetworkCreate{Name: "fill" + string(rune('a'+i))})
	}
	n2 := mustNetwork(t, m, api.NetworkCreate{Name: "after"})
	if got, want := n2.Subnets[0].Subnet.String(), "192.168.0.0/20"; got != want {
		t.Errorf("after 172.17-31: subnet = %s, want %s", got, want)
	}
	n3 := mustNetwork(t, m, api.NetworkCreate{Name: "after2"})
	if got, want := n3.Subnets[0].Subnet.String(), "192.168.16.0/20"; got != want {
		t.Errorf("next subnet = %s, want %s", got, want)
	}
}

func TestNetworkCreateInvalid(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "taken", Subnets: []string{"10.10.0.0/24"}})
	k.links["eth9"] = "device"
	cases := []struct {
		name  string
		req   api.NetworkCreate
		field string // the one-line error must name it
	}{
		{"empty name", api.NetworkCreate{Name: ""}, "name"},
		{"slash", api.NetworkCreate{Name: "a/b"}, "name"},
		{"dotdot", api.NetworkCreate{Name: "a..b"}, "name"},
		{"space", api.NetworkCreate{Name: "a b"}, "name"},
		{"newline", api.NetworkCreate{Name: "a\nb"}, "name"},
		{"leading dash", api.NetworkCreate{Name: "-x"}, "name"},
		{"too long", api.NetworkCreate{Name: strings.Repeat("a", 64)}, "name"},
		{"bad cidr", api.NetworkCreate{Name: "n", Subnets: []string{"10.0.0.0/33"}}, "subnet"},
		{"host bits", api.NetworkCreate{Name: "n", Subnets: []string{"10.0.0.1/24"}}, "subnet"},
		{"slash31", api.NetworkCreate{Name: "n", Subnets: []string{"10.1.0.0/31"}}, "subnet"},
		{"slash32", api.NetworkCreate{Name: "n", Subnets: []string{"10.1.0.0/32"}}, "subnet"},
		{"overlap", api.NetworkCreate{Name: "n", Subnets: []string{"10.10.0.128/25"}}, "subnet"},
		{"gateway outside", api.NetworkCreate{Name: "n", Subnets: []string{"10.2.0.0/24"}, Gateways: []string{"10.3.0.1"}}, "gateway"},
		{"gateway broadcast", api.NetworkCreate{Name: "n", Subnets: []string{"10.2.0.0/24"}, Gateways: []string{"10.2.0.255"}}, "gateway"},
		{"bad gateway", api.NetworkCreate{Name: "n", Gateways: []string{"x"}}, "gateway"},
		{"range outside", api.NetworkCreate{Name: "n", Subnets: []string{"10.2.0.0/24"}, IPRange: "10.2.1.0/25"}, "ip-range"},
		{"range bigger", api.NetworkCreate{Name: "n", Subnets: []string{"10.2.0.0/24"}, IPRange: "10.2.0.0/23"}, "ip-range"},
		{"v6 without ipv6", api.NetworkCreate{Name: "n", Subnets: []string{"fd00:1::/64"}}, "subnet"},
		{"bridge name long", api.NetworkCreate{Name: "n", Options: map[string]string{OptBridgeName: "abcdefghijklmnop"}}, "opt"},
		{"bridge name foreign", api.NetworkCreate{Name: "n", Options: map[string]string{OptBridgeName: "eth9"}}, "opt"},
		{"mtu", api.NetworkCreate{Name: "n", Options: map[string]string{OptMTU: "9x"}}, "opt"},
		{"icc", api.NetworkCreate{Name: "n", Options: map[string]string{OptICC: "maybe"}}, "opt"},
		{"driver", api.NetworkCreate{Name: "n", Driver: "overlay"}, "driver"},
	}
	before := m.cfg.Store.Snapshot().Networks()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.CreateNetwork(t.Context(), tc.req)
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("err = %v, want InvalidError on field %q", err, tc.field)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has several lines: %q", err)
			}
		})
	}
	if got := m.cfg.Store.Snapshot().Networks(); len(got) != len(before) {
		t.Errorf("networks changed by bad input: %d -> %d", len(before), len(got))
	}
	if _, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "TAKEN"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate name (other case): err = %v, want ErrConflict", err)
	}
}

func TestIPAMStaticDynamicRange(t *testing.T) {
	m, _ := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "back", Subnets: []string{"172.30.0.0/24"}, Gateways: []string{"172.30.0.1"}, IPRange: "172.30.0.128/25"})
	_, ep := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"back"}})
	if got, want := ep.IPv4.String(), "172.30.0.128"; got != want {
		t.Errorf("first dynamic address = %s, want %s (start of --ip-range)", got, want)
	}
	if got, want := ep.MAC, "02:42:ac:1e:00:80"; got != want {
		t.Errorf("MAC = %s, want %s (derived from the IPv4 address)", got, want)
	}
	_, ep = mustSandbox(t, m, api.SandboxCreate{Name: "b", Networks: []string{"back"}, IPv4: "172.30.0.50"})
	if got, want := ep.IPv4.String(), "172.30.0.50"; got != want {
		t.Errorf("static address = %s, want %s (outside the range but inside the subnet)", got, want)
	}
	cases := []struct{ ip, reason string }{
		{"172.30.0.50", "in use by sandbox b"},
		{"172.30.0.128", "in use by sandbox a"},
		{"172.30.0.1", "reserved"},
		{"172.30.0.0", "reserved"},
		{"172.30.0.255", "reserved"},
		{"172.31.0.5", "not in subnet"},
		{"fd00::1", "not an IPv4"},
	}
	for _, tc := range cases {
		_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "c", Networks: []string{"back"}, IPv4: tc.ip})
		if err == nil || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "ip") {
			t.Errorf("--ip %s: err = %v, want one naming ip and %q", tc.ip, err, tc.reason)
		}
	}
	if _, err := m.cfg.Store.Snapshot().SandboxByName("c"); err == nil {
		t.Errorf("failed creates left sandbox c behind")
	}
}

func TestIPAMExhaustionAndRelease(t *testing.T) {
	m, _ := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "tiny", Subnets: []string{"10.9.0.0/29"}})
	// /29: .0 network, .1 gateway, .7 broadcast: .2-.6 free.
	var got []string
	for _, name := range []string{"s1", "s2", "s3", "s4", "s5"} {
		_, ep := mustSandbox(t, m, api.SandboxCreate{Name: name, Networks: []string{"tiny"}})
		got = append(got, ep.IPv4.String())
	}
	if want := "10.9.0.2 10.9.0.3 10.9.0.4 10.9.0.5 10.9.0.6"; strings.Join(got, " ") != want {
		t.Errorf("addresses = %v, want %s", got, want)
	}
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "s6", Networks: []string{"tiny"}})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "no free address") {
		t.Fatalf("6th sandbox: err = %v, want no free address", err)
	}
	if _, err := m.cfg.Store.Snapshot().SandboxByName("s6"); err == nil {
		t.Errorf("exhaustion left a record of s6")
	}
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "s3", Force: true}); err != nil {
		t.Fatal(err)
	}
	_, ep := mustSandbox(t, m, api.SandboxCreate{Name: "s7", Networks: []string{"tiny"}})
	if got, want := ep.IPv4.String(), "10.9.0.4"; got != want {
		t.Errorf("after release: %s, want %s", got, want)
	}
}

func TestIPv6DualStack(t *testing.T) {
	m, _ := newTestManager(t)
	n := mustNetwork(t, m, api.NetworkCreate{Name: "v6", IPv6: true, Subnets: []string{"fd00:1::/64"}})
	if len(n.Subnets) != 2 || !n.Subnets[0].Subnet.Addr().Is4() || n.Subnets[1].Gateway.String() != "fd00:1::1" {
		t.Fatalf("subnets = %+v, want auto IPv4 then fd00:1::/64 gw fd00:1::1", n.Subnets)
	}
	_, ep := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"v6"}})
	if got, want := ep.IPv6.String(), "fd00:1::2"; got != want {
		t.Errorf("IPv6 = %s, want %s", got, want)
	}
	_, ep = mustSandbox(t, m, api.SandboxCreate{Name: "b", Networks: []string{"v6"}, IPv6: "fd00:1::99"})
	if got, want := ep.IPv6.String(), "fd00:1::99"; got != want {
		t.Errorf("static IPv6 = %s, want %s", got, want)
	}
	auto := mustNetwork(t, m, api.NetworkCreate{Name: "v6auto", IPv6: true})
	if len(auto.Subnets) != 2 || !auto.Subnets[1].Subnet.Addr().IsPrivate() || auto.Subnets[1].Subnet.Bits() != 64 {
		t.Errorf("auto IPv6 subnet = %+v, want a ULA /64", auto.Subnets)
	}
}

// TestIPAMRestart: allocations survive a reopen of the state file and are never handed
// out twice afterwards.
func TestIPAMRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	k := newFakeKernel()
	dir := t.TempDir()
	open := func() *Manager {
		st, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		m := New(Config{Store: st, Kernel: k, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			NetNSDir: dir + "/netns", FilesDir: dir + "/etc", RunDir: dir + "/state"})
		if err := m.Restore(t.Context()); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open()
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.5.0.0/24"}})
	_, a := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"app"}})
	m.cfg.Store.Close()

	m = open()
	sb, err := m.cfg.Store.Snapshot().SandboxByName("a")
	if err != nil || sb.State != store.StateReady {
		t.Fatalf("after reopen: sandbox a = %+v, %v", sb, err)
	}
	_, b := mustSandbox(t, m, api.SandboxCreate{Name: "b", Networks: []string{"app"}})
	if a.IPv4 == b.IPv4 {
		t.Fatalf("address %s handed out twice across a restart", a.IPv4)
	}
	if _, err := store.Open(path); !errors.Is(err, store.ErrLocked) {
		t.Errorf("second open of a held state file: err = %v, want ErrLocked", err)
	}
}

// TestPickSubnetExhausted: with every subnet of the pools taken, a create gets dockerd's
// words (the oracle, dockerd 20.10, with its default pools all used) and a conflict.
func TestPickSubnetExhausted(t *testing.T) {
	m := &Manager{cfg: Config{Pools: []Pool{{Base: netip.MustParsePrefix("10.200.0.0/23"), Size: 24}}}}
	used := []netip.Prefix{netip.MustParsePrefix("10.200.0.0/24")}
	p, err := m.pickSubnet(used, nil)
	if err != nil || p != netip.MustParsePrefix("10.200.1.0/24") {
		t.Fatalf("second subnet: %v, %v; want 10.200.1.0/24", p, err)
	}
	used = append(used, p)
	_, err = m.pickSubnet(used, nil)
	want := "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: conflict"
	if err == nil || err.Error() != want || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("pools exhausted: %v; want %q", err, want)
	}
}
