package resolver

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/<TestName>/<subtest>.golden, or rewrites it with -update.
func golden(t *testing.T, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", filepath.FromSlash(t.Name())+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run with -update to accept)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// hostFile reads an input resolv.conf from testdata/hostfiles.
func hostFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hostfiles", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture builds a store the way netmgr fills it, without the kernel.
type fixture struct {
	t  testing.TB
	st *store.Store
}

func newFixture(t testing.TB) *fixture {
	return &fixture{t: t, st: store.NewMemory()}
}

// hexID is a stable 64-hex ID for a name, so expectations can name short IDs.
func hexID(kind, name string) string {
	sum := sha256.Sum256([]byte(kind + "/" + name))
	return hex.EncodeToString(sum[:])
}

func (f *fixture) snap() *store.Snapshot { return f.st.Snapshot() }

func (f *fixture) update(fn func(tx *store.Tx) error) {
	f.t.Helper()
	if err := f.st.Update(fn); err != nil {
		f.t.Fatal(err)
	}
}

// network adds a bridge network. subnets are CIDRs; the gateway is the first host address.
func (f *fixture) network(name string, subnets ...string) *store.Network {
	f.t.Helper()
	nw := &store.Network{
		ID:     hexID("net", name),
		Name:   name,
		Driver: store.DriverBridge,
		Bridge: "br-" + hexID("net", name)[:12],
		ICC:    true,
	}
	for _, s := range subnets {
		p := netip.MustParsePrefix(s)
		nw.Subnets = append(nw.Subnets, store.Subnet{Subnet: p, Gateway: p.Addr().Next()})
		if p.Addr().Is6() {
			nw.IPv6 = true
		}
	}
	f.put(nw)
	return nw
}

// internal adds an --internal bridge network.
func (f *fixture) internal(name string, subnets ...string) *store.Network {
	f.t.Helper()
	nw := f.network(name, subnets...).Copy()
	nw.Internal = true
	f.put(nw)
	return nw
}

// predefined adds the default bridge, none and host networks.
func (f *fixture) predefined() (bridge, none, host *store.Network) {
	f.t.Helper()
	bridge = f.network("bridge", "172.17.0.0/16").Copy()
	bridge.Predefined, bridge.Bridge = true, "berth0"
	none = &store.Network{ID: hexID("net", "none"), Name: "none", Driver: store.DriverNull, Predefined: true}
	host = &store.Network{ID: hexID("net", "host"), Name: "host", Driver: store.DriverHost, Predefined: true}
	f.put(bridge)
	f.put(none)
	f.put(host)
	return bridge, none, host
}

func (f *fixture) put(nw *store.Network) {
	f.t.Helper()
	f.update(func(tx *store.Tx) error { return tx.PutNetwork(nw) })
}

// sandbox adds a ready bridge-mode sandbox; opts adjust it before insertion.
func (f *fixture) sandbox(name string, opts ...func(*store.Sandbox)) *store.Sandbox {
	f.t.Helper()
	sb := &store.Sandbox{
		ID:    hexID("sb", name),
		Name:  name,
		Mode:  store.ModeBridge,
		State: store.StateReady,
	}
	for _, o := range opts {
		o(sb)
	}
	f.update(func(tx *store.Tx) error {
		seq, err := tx.NextCounter("sandbox")
		if err != nil {
			return err
		}
		sb.Seq = seq
		return tx.PutSandbox(sb)
	})
	return sb
}

func hostname(h string) func(*store.Sandbox) { return func(sb *store.Sandbox) { sb.Hostname = h } }

func mode(m, container string) func(*store.Sandbox) {
	return func(sb *store.Sandbox) { sb.Mode, sb.Container = m, container }
}

func creating(sb *store.Sandbox) { sb.State = store.StateCreating }

// ep describes one connect.
type ep struct {
	ip4, ip6 string
	aliases  []string
	links    []store.Link
}

// connect joins sb to nw, filling DNSNames as netmgr does: name, aliases, short ID,
// hostname; lower-cased and deduplicated.
func (f *fixture) connect(sb *store.Sandbox, nw *store.Network, e ep) *store.Endpoint {
	f.t.Helper()
	end := &store.Endpoint{
		ID:        hexID("ep", sb.Name+"@"+nw.Name),
		NetworkID: nw.ID,
		SandboxID: sb.ID,
		Aliases:   e.aliases,
		Links:     e.links,
	}
	if e.ip4 != "" {
		end.IPv4 = netip.MustParseAddr(e.ip4)
	}
	if e.ip6 != "" {
		end.IPv6 = netip.MustParseAddr(e.ip6)
	}
	for _, n := range slices.Concat([]string{sb.Name}, e.aliases, []string{store.ShortID(sb.ID), sb.Hostname}) {
		n = strings.ToLower(n)
		if n != "" && !slices.Contains(end.DNSNames, n) {
			end.DNSNames = append(end.DNSNames, n)
		}
	}
	f.update(func(tx *store.Tx) error {
		seq, err := tx.NextCounter("endpoint")
		if err != nil {
			return err
		}
		end.Seq = seq
		end.IfName = "eth" + string(rune('0'+len(tx.SandboxEndpoints(sb.ID))))
		return tx.PutEndpoint(end)
	})
	return end
}

// disconnect removes an endpoint.
func (f *fixture) disconnect(e *store.Endpoint) {
	f.t.Helper()
	f.update(func(tx *store.Tx) error { return tx.DeleteEndpoint(e) })
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}
