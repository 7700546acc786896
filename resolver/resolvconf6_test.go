package resolver

import (
	"net/netip"
	"strings"
	"testing"
)

// nameservers returns the nameserver lines of a generated file.
func nameservers(b []byte) []string {
	var out []string
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "nameserver "); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestResolvConfIPv6Only: a sandbox with no IPv4 address on any network names the embedded
// DNS's IPv6 address; connecting it to a network that gives it an IPv4 address switches it
// to 127.0.0.11, and disconnecting switches it back.
func TestResolvConfIPv6Only(t *testing.T) {
	f := newFixture(t)
	only6 := f.network("only6", "fd00:7::/64")
	only6.NoIPv4 = true
	f.put(only6)
	dual := f.network("dual", "10.6.0.0/24", "fd00:6::/64")
	sb := f.sandbox("s")
	f.connect(sb, only6, ep{ip6: "fd00:7::2"})
	check := func(when, want string) {
		t.Helper()
		got := ResolvConf(f.snap(), sb.ID, HostConfig{ResolvConf: []byte("nameserver 10.0.0.53\n")})
		if ns := nameservers(got); len(ns) != 1 || ns[0] != want {
			t.Errorf("%s: nameservers %q; want [%s]\n%s", when, ns, want, got)
		}
		if n := Nameserver(f.snap(), sb.ID); n.String() != want {
			t.Errorf("%s: Nameserver %s; want %s", when, n, want)
		}
	}
	check("ipv6-only", "fd62:6572:7468::11")
	e := f.connect(sb, dual, ep{ip4: "10.6.0.2", ip6: "fd00:6::2"})
	check("connected to a dual-stack network", "127.0.0.11")
	f.disconnect(e)
	check("disconnected again", "fd62:6572:7468::11")
	if n := Nameserver(f.snap(), hexID("sb", "missing")); n.IsValid() {
		t.Errorf("Nameserver of a missing sandbox: %s; want the zero Addr", n)
	}
}

// TestUpstreamsDropEmbeddedNS6: the IPv6 service address is never an upstream (it would
// loop), written as --dns or in the host file, with a zone or a port.
func TestUpstreamsDropEmbeddedNS6(t *testing.T) {
	f := newFixture(t)
	sb := place(f, onUser6, dns("fd62:6572:7468::11", "[fd62:6572:7468::11]:53", "10.6.0.53"))
	ups := Upstreams(f.snap(), sb.ID, HostConfig{})
	if len(ups) != 1 || ups[0].Addr != netip.MustParseAddrPort("10.6.0.53:53") {
		t.Errorf("--dns upstreams: %v; want [10.6.0.53]", ups)
	}
	out := string(ResolvConf(f.snap(), sb.ID, HostConfig{}))
	if !strings.Contains(out, "# ExtServers: [10.6.0.53]\n") {
		t.Errorf("ExtServers should list only 10.6.0.53:\n%s", out)
	}
	f2 := newFixture(t)
	sb = place(f2, onUser6)
	ups = Upstreams(f2.snap(), sb.ID, HostConfig{ResolvConf: []byte("nameserver fd62:6572:7468::11\nnameserver 192.0.2.53\n")})
	if len(ups) != 1 || ups[0].Addr != netip.MustParseAddrPort("192.0.2.53:53") || !ups[0].HostNS {
		t.Errorf("host file upstreams: %v; want [host(192.0.2.53)]", ups)
	}
}
