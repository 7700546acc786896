package resolver

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"berth/store"
)

// world is the shared fixture of the lookup tests. Networks: n1, n2 (user), "a-int"
// (internal; sorts first by name but last by Docker's order), n6 (dual stack), "dot.net"
// (a dotted network name) and the predefined ones.
type world struct {
	*fixture
	sb map[string]*store.Sandbox
}

func newWorld(t testing.TB) *world {
	f := newFixture(t)
	w := &world{fixture: f, sb: map[string]*store.Sandbox{}}
	bridge, _, _ := f.predefined()
	n1 := f.network("n1", "10.1.0.0/24")
	n2 := f.network("n2", "10.2.0.0/24")
	aint := f.internal("a-int", "10.9.0.0/24")
	n6 := f.network("n6", "10.6.0.0/24", "fd00:6::/64")
	dot := f.network("dot.net", "10.7.0.0/24")

	add := func(name string, opts ...func(*store.Sandbox)) *store.Sandbox {
		sb := f.sandbox(name, opts...)
		w.sb[name] = sb
		return sb
	}
	f.connect(add("a"), n1, ep{ip4: "10.1.0.2"})
	f.connect(add("b", hostname("bhost")), n1, ep{ip4: "10.1.0.3", aliases: []string{"foo1", "Foo2"}})
	f.connect(add("c"), n1, ep{ip4: "10.1.0.4", aliases: []string{"shared"}})
	f.connect(add("d"), n1, ep{ip4: "10.1.0.5", aliases: []string{"shared"}})
	f.connect(add("db", hostname("db.example.com")), n1, ep{ip4: "10.1.0.6"})
	f.connect(add("half", creating), n1, ep{ip4: "10.1.0.7"})
	f.connect(add("x"), n2, ep{ip4: "10.2.0.2"})

	// "both" is on n1 and n2, joined n2 first: n1 still wins by name.
	both := add("both")
	f.connect(both, n2, ep{ip4: "10.2.0.20"})
	f.connect(both, n1, ep{ip4: "10.1.0.20"})
	q2 := add("q2")
	f.connect(q2, n2, ep{ip4: "10.2.0.21"})
	f.connect(q2, n1, ep{ip4: "10.1.0.21"})

	// "t" is on the internal network and n2; "q" queries from both.
	t1 := add("t")
	f.connect(t1, aint, ep{ip4: "10.9.0.10"})
	f.connect(t1, n2, ep{ip4: "10.2.0.10"})
	q := add("q")
	f.connect(q, aint, ep{ip4: "10.9.0.11"})
	f.connect(q, n2, ep{ip4: "10.2.0.11"})
	f.connect(add("qi"), aint, ep{ip4: "10.9.0.12"})

	// "l" links on n1 (b as bee, a dangling ghost as "a") and on n2 (b as bn2: b is not on
	// n2, so dangling; x as ex).
	l := add("l")
	f.connect(l, n1, ep{ip4: "10.1.0.30", links: []store.Link{{Target: "b", Alias: "bee"}, {Target: "ghost", Alias: "a"}}})
	f.connect(l, n2, ep{ip4: "10.2.0.30", links: []store.Link{{Target: "b", Alias: "bn2"}, {Target: "X", Alias: "Ex"}}})

	f.connect(add("s6"), n6, ep{ip4: "10.6.0.2", ip6: "fd00:6::2"})
	f.connect(add("s6b"), n6, ep{ip4: "10.6.0.3", ip6: "fd00:6::3"})
	f.connect(add("only6"), n6, ep{ip6: "fd00:6::4"})

	// "dual" is IPv4-only on n1 but dual-stack on n6; "qd" asks from both networks.
	dual := add("dual")
	f.connect(dual, n1, ep{ip4: "10.1.0.50"})
	f.connect(dual, n6, ep{ip4: "10.6.0.50", ip6: "fd00:6::50"})
	qd := add("qd")
	f.connect(qd, n1, ep{ip4: "10.1.0.51"})
	f.connect(qd, n6, ep{ip4: "10.6.0.51", ip6: "fd00:6::51"})

	f.connect(add("w"), dot, ep{ip4: "10.7.0.2"})
	f.connect(add("q3"), dot, ep{ip4: "10.7.0.3"})

	f.connect(add("legacy1"), bridge, ep{ip4: "172.17.0.2"})
	f.connect(add("legacy2"), bridge, ep{ip4: "172.17.0.3"})
	f.connect(add("mixed"), bridge, ep{ip4: "172.17.0.4"})
	f.connect(w.sb["mixed"], n1, ep{ip4: "10.1.0.40"})

	add("ctr", mode(store.ModeContainer, w.sb["a"].ID))
	add("nonet", mode(store.ModeNone, ""))
	return w
}

type lookupCase struct {
	name  string
	from  string
	qname string
	qtype uint16
	want  Result
}

func found(network, source string, ips ...string) Result {
	return Result{Kind: Found, Addrs: addrs(ips...), Network: network, Source: source}
}

func noData(network, source string) Result {
	return Result{Kind: NoData, Network: network, Source: source}
}

var notOurs = Result{}

func runLookups(t *testing.T, w *world, cases []lookupCase) {
	t.Helper()
	snap := w.snap()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Lookup(snap, w.sb[tc.from].ID, tc.qname, tc.qtype)
			slices.SortFunc(got.Addrs, netip.Addr.Compare)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("from %s: %s type %d: got %+v; want %+v", tc.from, tc.qname, tc.qtype, got, tc.want)
			}
		})
	}
}

func TestLookupNames(t *testing.T) {
	w := newWorld(t)
	runLookups(t, w, []lookupCase{
		{"name", "a", "b", TypeA, found("n1", "name", "10.1.0.3")},
		{"trailing dot", "a", "b.", TypeA, found("n1", "name", "10.1.0.3")},
		{"upper case", "a", "B.", TypeA, found("n1", "name", "10.1.0.3")},
		{"own name", "a", "a", TypeA, found("n1", "name", "10.1.0.2")},
		{"alias", "a", "foo1", TypeA, found("n1", "alias", "10.1.0.3")},
		{"alias given in upper case", "a", "FOO2", TypeA, found("n1", "alias", "10.1.0.3")},
		{"short id", "a", store.ShortID(w.sb["b"].ID), TypeA, found("n1", "name", "10.1.0.3")},
		{"short id upper case", "a", strings.ToUpper(store.ShortID(w.sb["b"].ID)), TypeA, found("n1", "name", "10.1.0.3")},
		{"full id is not a name", "a", w.sb["b"].ID, TypeA, notOurs},
		{"hostname", "a", "bhost", TypeA, found("n1", "name", "10.1.0.3")},
		{"dotted hostname", "a", "db.example.com.", TypeA, found("n1", "name", "10.1.0.6")},
		{"first label of dotted hostname", "a", "db", TypeA, found("n1", "name", "10.1.0.6")}, // the sandbox name
		{"name.network", "a", "b.n1", TypeA, found("n1", "name", "10.1.0.3")},
		{"name.network case-insensitive", "a", "B.N1.", TypeA, found("n1", "name", "10.1.0.3")},
		{"alias.network", "a", "foo1.n1", TypeA, found("n1", "alias", "10.1.0.3")},
		{"name on wrong network", "a", "b.n2", TypeA, notOurs},
		{"dotted network name", "q3", "w.dot.net", TypeA, found("dot.net", "name", "10.7.0.2")},
		{"dotted network name upper", "q3", "W.DOT.NET.", TypeA, found("dot.net", "name", "10.7.0.2")},
		{"shared alias gives both", "a", "shared", TypeA, found("n1", "alias", "10.1.0.4", "10.1.0.5")},
		{"unknown", "a", "nosuch.example", TypeA, notOurs},
		{"unknown single label", "a", "nosuch", TypeA, notOurs},
		{"root", "a", ".", TypeA, notOurs},
		{"empty labels", "a", "b..", TypeA, notOurs},
		{"creating sandbox not answered", "a", "half", TypeA, notOurs},
	})
	// A querier that does not exist gets nothing.
	if got := Lookup(w.snap(), hexID("sb", "nobody"), "b", TypeA); !reflect.DeepEqual(got, notOurs) {
		t.Errorf("unknown querier: got %+v; want NotOurs", got)
	}
}

func TestLookupScope(t *testing.T) {
	w := newWorld(t)
	runLookups(t, w, []lookupCase{
		{"other network", "x", "b", TypeA, notOurs},
		{"other network by name.network", "x", "b.n1", TypeA, notOurs},
		{"alias on other network", "x", "foo1", TypeA, notOurs},
		{"first network by name wins, not join order", "q2", "both", TypeA, found("n1", "name", "10.1.0.20")},
		{"name.network picks the other", "q2", "both.n2", TypeA, found("n2", "name", "10.2.0.20")},
		{"internal sorted after", "q", "t", TypeA, found("n2", "name", "10.2.0.10")},
		{"internal by name.network", "q", "t.a-int", TypeA, found("a-int", "name", "10.9.0.10")},
		{"internal only", "qi", "t", TypeA, found("a-int", "name", "10.9.0.10")},
		{"default bridge peers not in DNS", "legacy1", "legacy2", TypeA, notOurs},
		{"default bridge sandbox not visible from user net", "a", "legacy1", TypeA, notOurs},
		{"sandbox on bridge and n1 resolves on n1", "mixed", "a", TypeA, found("n1", "name", "10.1.0.2")},
		{"sandbox on bridge and n1 is found on n1", "a", "mixed", TypeA, found("n1", "name", "10.1.0.40")},
		{"container mode resolves as the shared sandbox", "ctr", "b", TypeA, found("n1", "name", "10.1.0.3")},
		{"container mode sandbox name is not a DNS name", "a", "ctr", TypeA, notOurs},
		{"none mode", "nonet", "b", TypeA, notOurs},
	})
}

func TestLookupLinks(t *testing.T) {
	w := newWorld(t)
	runLookups(t, w, []lookupCase{
		{"link alias for the linker", "l", "bee", TypeA, found("n1", "link", "10.1.0.3")},
		{"link alias case-insensitive", "l", "BEE.", TypeA, found("n1", "link", "10.1.0.3")},
		{"link alias with its network", "l", "bee.n1", TypeA, found("n1", "link", "10.1.0.3")},
		{"link alias with another network", "l", "bee.n2", TypeA, notOurs},
		{"link target name case differs", "l", "ex", TypeA, found("n2", "link", "10.2.0.2")},
		{"not for other sandboxes", "a", "bee", TypeA, notOurs},
		{"target not on the link's network", "l", "bn2", TypeA, notOurs},
		{"dangling link does not hide a real name", "l", "a", TypeA, found("n1", "name", "10.1.0.2")},
		{"link AAAA for v4 target", "l", "bee", TypeAAAA, noData("n1", "link")},
	})
}

func TestLookupFamilies(t *testing.T) {
	w := newWorld(t)
	runLookups(t, w, []lookupCase{
		{"AAAA for v4-only is NoData", "a", "b", TypeAAAA, noData("n1", "name")},
		{"AAAA unknown", "a", "nosuch", TypeAAAA, notOurs},
		{"AAAA dual stack", "s6", "s6b", TypeAAAA, found("n6", "name", "fd00:6::3")},
		{"A dual stack", "s6", "s6b", TypeA, found("n6", "name", "10.6.0.3")},
		{"A for v6-only is NoData", "s6", "only6", TypeA, noData("n6", "name")},
		{"AAAA for v6-only", "s6", "only6", TypeAAAA, found("n6", "name", "fd00:6::4")},
		// Docker's resolveName: a network that knows the name without an address of the
		// family does not stop the search; a later network with one answers.
		{"A from the first network", "qd", "dual", TypeA, found("n1", "name", "10.1.0.50")},
		{"AAAA from a later network", "qd", "dual", TypeAAAA, found("n6", "name", "fd00:6::50")},
		{"AAAA name.network without v6", "qd", "dual.n1", TypeAAAA, noData("n1", "name")},
	})
}

func TestLookupOtherTypes(t *testing.T) {
	w := newWorld(t)
	const typeTXT, typeCNAME, typeSRV, typeANY = 16, 5, 33, 255
	runLookups(t, w, []lookupCase{
		{"MX local name", "a", "b", TypeMX, noData("n1", "mx")},
		{"MX alias", "a", "foo1.", TypeMX, noData("n1", "mx")},
		{"MX link", "l", "bee", TypeMX, noData("n1", "mx")},
		{"MX v6-only name", "s6", "only6", TypeMX, noData("n6", "mx")},
		{"MX unknown", "a", "nosuch.example", TypeMX, notOurs},
		{"MX other network", "x", "b", TypeMX, notOurs},
		{"TXT for a local name", "a", "b", typeTXT, notOurs},
		{"CNAME for a local name", "a", "b", typeCNAME, notOurs},
		{"SRV", "a", "_x._tcp.b", typeSRV, notOurs},
		{"ANY", "a", "b", typeANY, notOurs},
	})
}

func TestLookupNdots(t *testing.T) {
	w := newWorld(t)
	snap := w.snap()
	a := w.sb["a"].ID
	for _, tc := range []struct {
		name     string
		qname    string
		qtype    uint16
		ndotsSet bool
		want     Result
	}{
		{"single label unknown, ndots set", "nosuch", TypeA, true, Result{Kind: NoData, Source: "ndots"}},
		{"single label unknown AAAA, ndots set", "nosuch.", TypeAAAA, true, Result{Kind: NoData, Source: "ndots"}},
		{"single label unknown, ndots not set", "nosuch", TypeA, false, notOurs},
		{"two labels unknown, ndots set", "nosuch.example", TypeA, true, notOurs},
		{"known name unaffected", "b", TypeA, true, found("n1", "name", "10.1.0.3")},
		{"MX unaffected", "nosuch", TypeMX, true, notOurs},
		{"root unaffected", ".", TypeA, true, notOurs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lookupNDots(snap, a, tc.qname, tc.qtype, tc.ndotsSet)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v; want %+v", got, tc.want)
			}
		})
	}
}

// TestLookupFollowsStore checks that answers come from the snapshot given: connect,
// disconnect and rename show up in the next snapshot, and an old snapshot is unchanged.
func TestLookupFollowsStore(t *testing.T) {
	w := newWorld(t)
	n2, err := w.snap().NetworkByName("n2")
	if err != nil {
		t.Fatal(err)
	}
	a := w.sb["a"].ID
	before := w.snap()
	e := w.connect(w.sb["a"], n2, ep{ip4: "10.2.0.50"})
	if got := Lookup(w.snap(), a, "x", TypeA); !reflect.DeepEqual(got, found("n2", "name", "10.2.0.2")) {
		t.Errorf("after connect: got %+v", got)
	}
	if got := Lookup(before, a, "x", TypeA); got.Kind != NotOurs {
		t.Errorf("old snapshot: got %+v; want NotOurs", got)
	}
	w.disconnect(e)
	if got := Lookup(w.snap(), a, "x", TypeA); got.Kind != NotOurs {
		t.Errorf("after disconnect: got %+v; want NotOurs", got)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{NotOurs: "not-ours", Found: "found", NoData: "no-data", 7: "kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q; want %q", k, got, want)
		}
	}
}

// lookupNDots is Lookup with the ndots rule as dnsd applies it.
func lookupNDots(snap *store.Snapshot, sbID, qname string, qtype uint16, ndotsSet bool) Result {
	return NDots(Lookup(snap, sbID, qname, qtype), qname, qtype, func() bool { return ndotsSet })
}
