package resolver

import (
	"strings"
	"testing"

	"berth/store"
)

func extraHosts(h ...string) func(*store.Sandbox) {
	return func(sb *store.Sandbox) { sb.ExtraHosts = h }
}

func TestHosts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		where  string
		sbOpts []func(*store.Sandbox)
	}{
		{name: "user_network", where: onUser},
		{name: "hostname", where: onUser, sbOpts: []func(*store.Sandbox){hostname("web-1")}},
		{name: "dotted_hostname", where: onUser, sbOpts: []func(*store.Sandbox){hostname("c1.invalid")}},
		{name: "dual_stack", where: onUser6},
		{name: "add_host", where: onUser, sbOpts: []func(*store.Sandbox){extraHosts(
			"extra:86.75.30.9", "v6host:fd00::1", "bracket:[fd00::2]", "equals=192.0.2.7", "bad-entry", ":1.2.3.4")}},
		{name: "default_bridge", where: onBridge},
		{name: "none_mode", where: onNone, sbOpts: []func(*store.Sandbox){extraHosts("extra:86.75.30.9")}},
		{name: "host_mode", where: onHost, sbOpts: []func(*store.Sandbox){extraHosts("extra:86.75.30.9")}},
		{name: "container_mode", where: onShared, sbOpts: []func(*store.Sandbox){hostname("owner.example")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			sb := place(f, tc.where, tc.sbOpts...)
			golden(t, Hosts(f.snap(), sb.ID))
		})
	}
}

// TestHostsMultiNetwork: own lines per network in join order, peers never written.
func TestHostsMultiNetwork(t *testing.T) {
	f := newFixture(t)
	bridge, _, _ := f.predefined()
	n1 := f.network("n1", "10.1.0.0/24")
	n6 := f.network("n6", "10.6.0.0/24", "fd00:6::/64")
	sb := f.sandbox("multi", hostname("m.example"), extraHosts("gw:10.1.0.1"))
	f.connect(sb, n6, ep{ip4: "10.6.0.2", ip6: "fd00:6::2"})
	f.connect(sb, bridge, ep{ip4: "172.17.0.2"})
	f.connect(sb, n1, ep{ip4: "10.1.0.2"})
	peer := f.sandbox("peer")
	f.connect(peer, n1, ep{ip4: "10.1.0.3"})
	t.Run("join_order", func(t *testing.T) { golden(t, Hosts(f.snap(), sb.ID)) })
}

// TestHostsLegacyLinks: on the default bridge, --link writes the target's addresses under
// the alias, its hostname and its name; targets off the default bridge are left out.
func TestHostsLegacyLinks(t *testing.T) {
	f := newFixture(t)
	bridge, _, _ := f.predefined()
	n1 := f.network("n1", "10.1.0.0/24")
	one := f.sandbox("one")
	f.connect(one, bridge, ep{ip4: "172.17.0.2", ip6: "fd00:17::2"})
	db := f.sandbox("db", hostname("dbhost"))
	f.connect(db, bridge, ep{ip4: "172.17.0.3"})
	away := f.sandbox("away")
	f.connect(away, n1, ep{ip4: "10.1.0.5"})
	two := f.sandbox("two", extraHosts("extra:86.75.30.9"))
	f.connect(two, bridge, ep{ip4: "172.17.0.4", links: []store.Link{
		{Target: "one", Alias: "onetwo"},
		{Target: "db", Alias: "db"},
		{Target: "one", Alias: "onetwo"}, // repeated: one line
		{Target: "away", Alias: "far"},   // not on the default bridge
		{Target: "ghost", Alias: "boo"},  // does not exist
	}})
	t.Run("links", func(t *testing.T) { golden(t, Hosts(f.snap(), two.ID)) })

	// The target moves: re-rendering carries its new address.
	moved := f.snap()
	e, err := moved.EndpointOf(bridge.ID, one.ID)
	if err != nil {
		t.Fatal(err)
	}
	e = e.Copy()
	e.IPv4 = e.IPv4.Next().Next().Next().Next().Next().Next().Next().Next()
	f.update(func(tx *store.Tx) error { return tx.PutEndpoint(e) })
	if got := string(Hosts(f.snap(), two.ID)); !strings.Contains(got, "172.17.0.10\tonetwo one\n") {
		t.Errorf("after the target moved:\n%s", got)
	}

	// Links on user networks are DNS aliases, not hosts lines.
	three := f.sandbox("three")
	f.connect(three, n1, ep{ip4: "10.1.0.6", links: []store.Link{{Target: "away", Alias: "far"}}})
	if got := string(Hosts(f.snap(), three.ID)); strings.Contains(got, "far") {
		t.Errorf("user-network link written to hosts:\n%s", got)
	}
}

func TestHostsMissingSandbox(t *testing.T) {
	f := newFixture(t)
	if got := Hosts(f.snap(), hexID("sb", "missing")); got != nil {
		t.Errorf("got %q; want nil", got)
	}
}

func TestSplitExtraHost(t *testing.T) {
	for _, tc := range []struct{ in, name, ip string }{
		{"a:1.2.3.4", "a", "1.2.3.4"},
		{"a:::1", "a", "::1"},
		{"a:fd00::1", "a", "fd00::1"},
		{"a:[fd00::1]", "a", "fd00::1"},
		{"a=fd00::1", "a", "fd00::1"},
		{"a.b.c:10.0.0.1", "a.b.c", "10.0.0.1"},
		{"nocolon", "", ""},
		{"a:", "", ""},
	} {
		name, ip, ok := splitExtraHost(tc.in)
		if tc.name == "" {
			if ok {
				t.Errorf("splitExtraHost(%q) = %q, %q; want rejected", tc.in, name, ip)
			}
			continue
		}
		if !ok || name != tc.name || ip != tc.ip {
			t.Errorf("splitExtraHost(%q) = %q, %q, %v; want %q, %q", tc.in, name, ip, ok, tc.name, tc.ip)
		}
	}
}
