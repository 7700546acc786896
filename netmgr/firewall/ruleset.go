package firewall

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// Rules is the ruleset of one State: berth's tables with their sets, chains and rules, and
// the bridges that need route_localnet. Build it with Ruleset; String renders it in nft
// syntax.
type Rules struct {
	tables        []*table // ip, ip6, bridge; only those needed
	routeLocalnet []string // bridges with published IPv4 ports, sorted
}

type table struct {
	family nftables.TableFamily
	sets   []*set
	chains []*chain
}

// chain is a base chain with policy accept (berth's rules only ever drop or accept, or
// NAT, traffic they are about, and leave the rest to the other tables), or a regular
// chain (hook nil) that a rule jumps to.
type chain struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	prioName string // as nft prints it
	rules    []*rule
}

var familyNames = map[nftables.TableFamily]string{
	nftables.TableFamilyIPv4:   "ip",
	nftables.TableFamilyIPv6:   "ip6",
	nftables.TableFamilyBridge: "bridge",
}

// families are berth's table families, in the order they are built and removed.
var families = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6, nftables.TableFamilyBridge}

// bridgeFilter is the bridge family's "filter" priority (NF_BR_PRI_FILTER_BRIDGED).
var bridgeFilter = nftables.ChainPriorityRef(-200)

// Ruleset builds the rules for s. The result depends only on the set of inputs, not their
// order. It fails, changing nothing, if s is inconsistent (unknown bridge, bad protocol,
// mixed families).
//
// The ip and ip6 tables have a fixed set of rules whenever a network exists; networks,
// ports and links are elements of their sets and maps. Only the bridge table (ICC=false
// networks) has rules per network.
func Ruleset(s State) (*Rules, error) {
	s, err := normalize(s)
	if err != nil {
		return nil, err
	}
	rs := &Rules{}
	if len(s.Networks) == 0 {
		return rs, nil
	}
	for _, v4 := range []bool{true, false} {
		b := newBuilder(s, v4)
		t := &table{family: nftables.TableFamilyIPv6, sets: b.sets()}
		if v4 {
			t.family = nftables.TableFamilyIPv4
		}
		t.chains = []*chain{
			{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward,
				priority: nftables.ChainPriorityFilter, prioName: "filter", rules: b.forward()},
			{name: "prerouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting,
				priority: nftables.ChainPriorityNATDest, prioName: "dstnat", rules: b.dnat()},
			{name: "output", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookOutput,
				priority: nftables.ChainPriorityNATDest, prioName: "dstnat", rules: b.output()},
			{name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting,
				priority: nftables.ChainPriorityNATSource, prioName: "srcnat", rules: b.postrouting()},
			{name: chainIntra, rules: b.intra()},
		}
		rs.tables = append(rs.tables, t)
		if v4 {
			rs.routeLocalnet = b.published()
		}
	}
	if t := bridgeTable(s); t != nil {
		rs.tables = append(rs.tables, t)
	}
	return rs, nil
}

// Size counts the rules and the set elements of rs: what a full rebuild sends.
func (rs *Rules) Size() (rules, elements int) {
	for _, t := range rs.tables {
		for _, c := range t.chains {
			rules += len(c.rules)
		}
		for _, s := range t.sets {
			elements += len(s.elems)
		}
	}
	return rules, elements
}

// String renders the rules as `nft list table` would show them (close to it: nft may
// print some matches differently, and lists set elements in its own order), one table
// after the other.
func (rs *Rules) String() string {
	var b strings.Builder
	for _, br := range rs.routeLocalnet {
		fmt.Fprintf(&b, "# sysctl net.ipv4.conf.%s.route_localnet=1\n", br)
	}
	for _, t := range rs.tables {
		fmt.Fprintf(&b, "table %s %s {\n", familyNames[t.family], TableName)
		for i, s := range t.sets {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(s.String())
		}
		for i, c := range t.chains {
			if i > 0 || len(t.sets) > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "\tchain %s {\n", c.name)
			if c.hook != nil {
				fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", c.typ, c.name, c.prioName)
			}
			for _, r := range c.rules {
				fmt.Fprintf(&b, "\t\t%s\n", r)
			}
			b.WriteString("\t}\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// builder makes the rules of one family (ip or ip6) from a clean State (see clean).
type builder struct {
	s    State
	v4   bool
	nets map[string]Network // by bridge; it runs on every change: no linear searches
}

func newBuilder(s State, v4 bool) builder {
	b := builder{s: s, v4: v4, nets: make(map[string]Network, len(s.Networks))}
	for _, nw := range s.Networks {
		b.nets[nw.Bridge] = nw
	}
	return b
}

// published lists the bridges with a port published in this family, sorted.
func (b builder) published() []string {
	var brs []string
	add := func(set string, key, _, _ []byte) {
		if set == setLocalnet {
			brs = append(brs, bridgeName(key))
		}
	}
	for _, p := range b.s.Ports {
		b.portElems(p, b.nets[p.Bridge], add)
	}
	slices.Sort(brs)
	return slices.Compact(brs)
}

// bridgeName is the interface name of an ifname key.
func bridgeName(key []byte) string { return string(bytes.TrimRight(key, "\x00")) }

func (b builder) subnets(nw Network) (ps []netip.Prefix) {
	for _, p := range nw.Subnets {
		if p.Addr().Is4() == b.v4 {
			ps = append(ps, p)
		}
	}
	return ps
}
