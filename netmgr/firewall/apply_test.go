package firewall_test

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"berth/internal/nsutil"
	"berth/internal/testns"
	"berth/netmgr/firewall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// baseState: fw-a and fw-b, Docker defaults; a1 publishes TCP 8080 and UDP 8053, a2 TCP 8081.
func baseState() firewall.State {
	return firewall.State{
		Networks: []firewall.Network{
			{Bridge: "fw-a", Subnets: []netip.Prefix{pfx("10.88.1.0/24")}, ICC: true, Masquerade: true},
			{Bridge: "fw-b", Subnets: []netip.Prefix{pfx("10.88.2.0/24")}, ICC: true, Masquerade: true},
		},
		Ports: []firewall.Port{
			{Proto: "tcp", HostPort: 8080, Addr: addr("10.88.1.2"), Port: portEcho, Bridge: "fw-a"},
			{Proto: "udp", HostPort: 8053, Addr: addr("10.88.1.2"), Port: portEcho, Bridge: "fw-a"},
			{Proto: "tcp", HostPort: 8081, Addr: addr("10.88.1.3"), Port: portEcho, Bridge: "fw-a"},
		},
	}
}

// withNetA returns baseState with fw-a changed by f.
func withNetA(f func(*firewall.Network)) firewall.State {
	s := baseState()
	f(&s.Networks[0])
	return s
}

func mustApply(t *testing.T, s firewall.State) {
	t.Helper()
	if err := firewall.Apply(s); err != nil {
		t.Fatal(err)
	}
}

// TestDataPlane checks the rules with real traffic between namespaces (see rig).
func TestDataPlane(t *testing.T) {
	r := newRig(t)
	other := addOtherTable(t)
	t.Cleanup(func() {
		if err := firewall.Remove(); err != nil {
			t.Error(err)
		}
	})

	// Without berth's rules a sandbox reaches the other bridge: the isolation checks
	// below are not vacuous.
	if err := firewall.EnableForwarding(false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("ip_forward: got %q; want 1", b)
	}
	r.reach(t, "b1", "tcp", "10.88.1.2:7000", "a1 10.88.2.2")

	// Bridged traffic between sandboxes reaches the ip hooks only with br_netfilter on.
	for _, brnf := range []string{"1", "0"} {
		t.Run("bridge-nf-call-iptables="+brnf, func(t *testing.T) {
			const sysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"
			if _, err := os.Stat(sysctl); err != nil {
				t.Skipf("no br_netfilter: %v", err)
			}
			setSysctl(t, sysctl, brnf)
			testTraffic(t, r)
		})
	}
	base := baseState()
	t.Run("other tables untouched", func(t *testing.T) {
		mustApply(t, base)
		if err := firewall.Remove(); err != nil {
			t.Fatal(err)
		}
		if got := nftTables(t); got != "" {
			t.Errorf("berth tables after Remove:\n%s", got)
		}
		if err := firewall.Remove(); err != nil { // nothing left to remove
			t.Errorf("second Remove: %v", err)
		}
		if got := nftList(t, "inet", "other"); got != other {
			t.Errorf("table inet other changed:\ngot:\n%s\nwant:\n%s", got, other)
		}
	})
}

// testTraffic checks each feature with real traffic.
func testTraffic(t *testing.T, r *rig) {
	base := baseState()
	mustApply(t, base)

	t.Run("outbound masqueraded", func(t *testing.T) {
		r.reach(t, "a1", "tcp", "192.0.2.2:7000", "out 192.0.2.1")
		r.reach(t, "a2", "udp", "192.0.2.2:7000", "out 192.0.2.1")
		r.reach(t, "b1", "tcp", "192.0.2.2:7000", "out 192.0.2.1")
	})
	t.Run("published from outside", func(t *testing.T) {
		r.reach(t, "out", "tcp", "192.0.2.1:8080", "a1 192.0.2.2")
		r.reach(t, "out", "udp", "192.0.2.1:8053", "a1 192.0.2.2")
		r.reach(t, "out", "tcp", "192.0.2.1:8081", "a2 192.0.2.2")
		r.block(t, "out", "tcp", "192.0.2.1:8082")
	})
	t.Run("published from daemon netns", func(t *testing.T) {
		r.reach(t, "daemon", "tcp", "127.0.0.1:8080", "a1 10.88.1.1")
		r.reach(t, "daemon", "udp", "127.0.0.1:8053", "a1 10.88.1.1")
		r.reach(t, "daemon", "tcp", "192.0.2.1:8081", "a2 192.0.2.1")
		r.reach(t, "daemon", "udp", "192.0.2.1:8053", "a1 192.0.2.1")
	})
	t.Run("hairpin", func(t *testing.T) {
		r.reach(t, "a1", "tcp", "192.0.2.1:8080", "a1 10.88.1.1") // itself
		r.reach(t, "a1", "udp", "192.0.2.1:8053", "a1 10.88.1.1")
		r.reach(t, "a2", "tcp", "192.0.2.1:8080", "a1 10.88.1.1") // its peer
		r.reach(t, "a1", "tcp", "10.88.1.1:8081", "a2 10.88.1.1") // via the gateway address
		r.reach(t, "b1", "tcp", "192.0.2.1:8080", "a1 10.88.1.1") // from another network
	})
	t.Run("no direct routing from outside", func(t *testing.T) {
		routeFromOutside(t, r)
		r.block(t, "out", "tcp", "10.88.1.2:7000") // published, but only through the host address
		r.block(t, "out", "tcp", "10.88.1.2:7001")
		r.block(t, "out", "udp", "10.88.2.2:7000")
	})
	t.Run("networks isolated", func(t *testing.T) {
		r.block(t, "b1", "tcp", "10.88.1.2:7000")
		r.block(t, "a1", "tcp", "10.88.2.2:7000")
		r.block(t, "a2", "udp", "10.88.2.2:7000")
		r.reach(t, "a1", "tcp", "10.88.1.3:7001", "a2 10.88.1.2") // ICC on
		r.reach(t, "a1", "tcp", "10.88.1.1:8080", "a1 10.88.1.1")
	})
	t.Run("masquerade off", func(t *testing.T) {
		t.Cleanup(func() { mustApply(t, base) })
		mustApply(t, withNetA(func(n *firewall.Network) { n.Masquerade = false }))
		seen.drain()
		// out has no route back to 10.88.1.0/24: the datagram arrives, the answer is lost.
		r.block(t, "a1", "udp", "192.0.2.2:7000")
		if got, want := seen.next(), "out 10.88.1.2"; got != want {
			t.Errorf("source seen outside: got %q; want %q", got, want)
		}
		r.reach(t, "b1", "tcp", "192.0.2.2:7000", "out 192.0.2.1") // fw-b still masquerades
		r.reach(t, "out", "tcp", "192.0.2.1:8080", "a1 192.0.2.2")
	})
	t.Run("icc off", func(t *testing.T) { testICC(t, r, base) })
	t.Run("internal", func(t *testing.T) {
		t.Cleanup(func() { mustApply(t, base) })
		routeFromOutside(t, r)
		mustApply(t, withNetA(func(n *firewall.Network) { n.Internal = true }))
		r.reach(t, "a1", "tcp", "10.88.1.3:7000", "a2 10.88.1.2")
		r.reach(t, "a2", "udp", "10.88.1.2:7000", "a1 10.88.1.3")
		r.block(t, "a1", "tcp", "192.0.2.2:7000")
		r.block(t, "a1", "udp", "192.0.2.2:7000")
		r.block(t, "a1", "tcp", "10.88.2.2:7000")
		r.block(t, "b1", "tcp", "10.88.1.2:7000")
		r.block(t, "out", "tcp", "10.88.1.2:7000")
		r.block(t, "out", "tcp", "192.0.2.1:8080") // ports are not published on internal networks
		r.reach(t, "b1", "tcp", "192.0.2.2:7000", "out 192.0.2.1")
	})
	t.Run("rules follow state", func(t *testing.T) { testRulesFollowState(t, r, base) })
}

// testICC checks that ICC=false blocks traffic between the sandboxes of a bridge and that
// a link row opens only its own pair, port, protocol and direction.
func testICC(t *testing.T, r *rig, base firewall.State) {
	t.Cleanup(func() { mustApply(t, base) })
	iccOff := withNetA(func(n *firewall.Network) { n.ICC = false })
	mustApply(t, iccOff)
	r.block(t, "a1", "tcp", "10.88.1.3:7000")
	r.block(t, "a2", "udp", "10.88.1.2:7000")
	r.reach(t, "a1", "tcp", "192.0.2.2:7000", "out 192.0.2.1")
	r.reach(t, "out", "tcp", "192.0.2.1:8081", "a2 192.0.2.2") // published ports stay reachable
	r.reach(t, "b1", "tcp", "192.0.2.1:8081", "a2 10.88.1.1")
	r.reach(t, "a1", "tcp", "192.0.2.1:8080", "a1 10.88.1.1") // hairpin to itself
	r.block(t, "a1", "tcp", "192.0.2.1:8081")                 // but not to its peer
	r.block(t, "a1", "tcp", "10.88.1.3:7000")                 // and not directly

	linked := iccOff
	linked.Links = []firewall.Link{{Bridge: "fw-a", From: addr("10.88.1.2"), To: addr("10.88.1.3"), Proto: "tcp", Port: portEcho}}
	mustApply(t, linked)
	r.reach(t, "a1", "tcp", "10.88.1.3:7000", "a2 10.88.1.2")
	r.block(t, "a1", "tcp", "10.88.1.3:7001") // another port
	r.block(t, "a1", "udp", "10.88.1.3:7000") // another protocol
	r.block(t, "a2", "tcp", "10.88.1.2:7000") // the other direction
}

// testRulesFollowState checks that Apply replaces berth's tables with exactly the rules
// of the state given, and that the same state always gives the same tables.
func testRulesFollowState(t *testing.T, r *rig, base firewall.State) {
	mustApply(t, base)
	full := testns.SortedSets(nftTables(t))
	t.Logf("nft list of the base state:\n%s", full)
	mustApply(t, base)
	if got := testns.SortedSets(nftTables(t)); got != full {
		t.Errorf("second Apply changed the tables:\nbefore:\n%s\nafter:\n%s", full, got)
	}
	shuffled := baseState()
	slices.Reverse(shuffled.Networks)
	slices.Reverse(shuffled.Ports)
	mustApply(t, shuffled)
	if got := testns.SortedSets(nftTables(t)); got != full {
		t.Errorf("reordered state gave other tables:\nbefore:\n%s\nafter:\n%s", full, got)
	}
	for _, want := range []string{"table ip berth", "table ip6 berth", "8081", "fw-b", "8081 : 10.88.1.3 . 7000"} {
		if !strings.Contains(full, want) {
			t.Errorf("tables of the full state lack %q:\n%s", want, full)
		}
	}

	// a2's port and network fw-b removed.
	small := baseState()
	small.Networks = small.Networks[:1]
	small.Ports = small.Ports[:2]
	mustApply(t, small)
	got := nftTables(t)
	for _, gone := range []string{"8081", "10.88.1.3", "fw-b", "10.88.2.0"} {
		if strings.Contains(got, gone) {
			t.Errorf("tables after removal still mention %q:\n%s", gone, got)
		}
	}
	r.block(t, "out", "tcp", "192.0.2.1:8081")
	r.reach(t, "out", "tcp", "192.0.2.1:8080", "a1 192.0.2.2")

	mustApply(t, base)
	if got := testns.SortedSets(nftTables(t)); got != full {
		t.Errorf("re-applied state gave other tables:\nbefore:\n%s\nafter:\n%s", full, got)
	}
	mustApply(t, firewall.State{})
	if got := nftTables(t); got != "" {
		t.Errorf("tables of the empty state:\n%s", got)
	}
	mustApply(t, base)
}

// routeFromOutside gives "out" a route to the bridges' subnets via the daemon netns until
// the test ends, as a neighbour routing to the sandboxes directly would have.
func routeFromOutside(t *testing.T, r *rig) {
	t.Helper()
	ns, err := nsutil.Open(r.ns["out"])
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("10.88.0.0/16")
	route := &netlink.Route{Dst: dst, Gw: addr("192.0.2.1").AsSlice()}
	if err := h.RouteAdd(route); err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer h.Close()
		if err := h.RouteDel(route); err != nil {
			t.Error(err)
		}
	})
}

// addOtherTable installs `table inet other` with a chain and a rule, standing for
// another program's rules, and returns its listing.
func addOtherTable(t *testing.T) string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyINet})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "forward", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{ // iifname "other0" drop
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("other0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.DelTable(tb)
		c.Flush()
	})
	return nftList(t, "inet", "other")
}

// TestRenderingMatchesKernel checks that Rules.String, which the golden files show, is
// what nft reads back from the kernel: the expressions and the text are built in step.
func TestRenderingMatchesKernel(t *testing.T) {
	testns.Require(t)
	t.Cleanup(func() { firewall.Remove() })
	linked := withNetA(func(n *firewall.Network) { n.ICC = false })
	linked.Networks[0].Subnets = append(linked.Networks[0].Subnets, pfx("fd00:88:1::/64"))
	linked.Ports = append(linked.Ports, firewall.Port{Proto: "udp", HostIP: addr("fd00::1"), HostPort: 53, Addr: addr("fd00:88:1::2"), Port: 53, Bridge: "fw-a"})
	linked.Links = []firewall.Link{{Bridge: "fw-a", From: addr("10.88.1.2"), To: addr("10.88.1.3"), Proto: "tcp", Port: 80}}
	internal := withNetA(func(n *firewall.Network) { n.Internal = true })
	for name, s := range map[string]firewall.State{"base": baseState(), "icc off": linked, "internal": internal} {
		rs, err := firewall.Ruleset(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.Apply(); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, l := range strings.Split(rs.String(), "\n") {
			if !strings.HasPrefix(l, "#") {
				// nft leaves out the ether type that an ip match depends on.
				l = strings.NewReplacer("ether type ip6 ", "", "ether type ip ", "").Replace(l)
				want = append(want, l)
			}
		}
		// nft 1.0 names the dstnat priority only in the prerouting hook.
		got := strings.ReplaceAll(nftTables(t), "hook output priority -100;", "hook output priority dstnat;")
		got = testns.SortedSets(got)
		if got != testns.SortedSets(strings.Join(want, "\n")) {
			gl, wl := strings.Split(got, "\n"), want
			for i := range min(len(gl), len(wl)) {
				if gl[i] != wl[i] {
					t.Errorf("%s: line %d: nft lists %q; want %q", name, i+1, gl[i], wl[i])
					break
				}
			}
			if len(gl) != len(wl) {
				t.Errorf("%s: nft lists %d lines; want %d", name, len(gl), len(wl))
			}
		}
	}
}
