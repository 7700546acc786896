package firewall

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// Sets and maps of the ip and ip6 tables (localnet: ip only). Their elements are all
// that grows with the networks and ports; the rules that look them up are fixed.
const (
	setPairs    = "bridge_pairs" // ifname . ifname: B . B for each berth bridge
	setInternal = "internal"     // bridges of internal networks
	setOpen     = "open"         // bridges of the other networks
	setICC      = "icc"          // bridges with ICC on
	setPorts    = "ports"        // oifname . daddr . proto . port of each published port
	setHairpin  = "hairpin"      // the same with saddr = daddr, ICC-off bridges only
	setLinks    = "links"        // bridge . from . to . proto . port of each link row
	mapHost     = "hostports"    // host addr . proto . port : addr . port (ports with a HostIP)
	mapAny      = "anyports"     // proto . port : addr . port (ports on every local address)
	setLocalnet = "localnet"     // bridges with published IPv4 ports
	setPubNets  = "pubnets"      // bridge . subnet of bridges with published ports
	setOwnNets  = "ownnets"      // bridge . subnet of networks that masquerade
	setMasqNets = "masqnets"     // subnets of networks that masquerade
	chainIntra  = "intra"        // traffic between two ports of one berth bridge
)

// sink receives the elements one input (a network, port or link) puts into the sets:
// set name, key, key end (interval sets) and map data. Ruleset collects them all; a
// Firewall adds and removes those of the inputs that changed.
type sink func(set string, key, keyEnd, val []byte)

// setDefs are the (empty) sets of this family's table.
func (b builder) setDefs() []*set {
	mk := func(name string, key, data []kind, interval bool) *set {
		return &set{name: name, key: key, data: data, interval: interval, v4: b.v4}
	}
	sets := []*set{
		mk(setPairs, []kind{kIfname, kIfname}, nil, false),
		mk(setInternal, []kind{kIfname}, nil, false),
		mk(setOpen, []kind{kIfname}, nil, false),
		mk(setICC, []kind{kIfname}, nil, false),
		mk(setPorts, []kind{kIfname, kAddr, kProto, kService}, nil, false),
		mk(setHairpin, []kind{kIfname, kAddr, kAddr, kProto, kService}, nil, false),
		mk(setLinks, []kind{kIfname, kAddr, kAddr, kProto, kService}, nil, false),
		mk(mapHost, []kind{kAddr, kProto, kService}, []kind{kAddr, kService}, false),
		mk(mapAny, []kind{kProto, kService}, []kind{kAddr, kService}, false),
		mk(setPubNets, []kind{kIfname, kAddr}, nil, true),
		mk(setOwnNets, []kind{kIfname, kAddr}, nil, true),
		mk(setMasqNets, []kind{kAddr}, nil, true),
	}
	if b.v4 {
		sets = append(sets, mk(setLocalnet, []kind{kIfname}, nil, false))
	}
	return sets
}

// sets builds the sets of this family with their elements.
func (b builder) sets() []*set {
	sets := b.setDefs()
	add := collect(sets)
	for _, nw := range b.s.Networks {
		b.networkElems(nw, add)
	}
	for _, l := range b.s.Links {
		b.linkElems(l, b.nets[l.Bridge], add)
	}
	for _, p := range b.s.Ports { // sorted: of two ports with one map key, the first stays
		b.portElems(p, b.nets[p.Bridge], add)
	}
	for _, s := range sets {
		s.finish()
	}
	return sets
}

// collect is a sink that adds to the named sets of sets.
func collect(sets []*set) sink {
	byName := make(map[string]*set, len(sets))
	for _, s := range sets {
		byName[s.name] = s
	}
	return func(name string, key, keyEnd, val []byte) { byName[name].add(key, keyEnd, val) }
}

// networkElems are network nw's elements: its bridge in the sets of bridges, and its
// subnets in those of masquerading networks.
func (b builder) networkElems(nw Network, add sink) {
	br := ifnameKey(nw.Bridge)
	add(setPairs, cat(br, br), nil, nil)
	if nw.Internal {
		add(setInternal, br, nil, nil)
	} else {
		add(setOpen, br, nil, nil)
	}
	if nw.ICC {
		add(setICC, br, nil, nil)
	}
	if nw.Internal || !nw.Masquerade {
		return
	}
	for _, sn := range b.subnets(nw) {
		first, last := sn.Masked().Addr().AsSlice(), lastAddr(sn).AsSlice()
		add(setOwnNets, cat(br, first), cat(br, last), nil)
		add(setMasqNets, first, last, nil)
	}
}

// linkElems is link row l's element on its network nw (ICC=false only).
func (b builder) linkElems(l Link, nw Network, add sink) {
	if nw.ICC || l.From.Is4() != b.v4 {
		return
	}
	add(setLinks, cat(ifnameKey(l.Bridge), l.From.AsSlice(), l.To.AsSlice(), protoKey(l.Proto), serviceKey(l.Port)), nil, nil)
}

// portElems are published port p's elements, if it is published in this family (not on
// an internal network; see hostIP): the forward accept, the DNAT map entry, and its
// bridge as one with published ports (loopback and hairpin masquerade).
func (b builder) portElems(p Port, nw Network, add sink) {
	if p.Addr.Is4() != b.v4 || nw.Internal {
		return
	}
	hip, ok := hostIP(p, nw)
	if !ok {
		return
	}
	br, a, proto, port := ifnameKey(p.Bridge), p.Addr.AsSlice(), protoKey(p.Proto), serviceKey(p.Port)
	add(setPorts, cat(br, a, proto, port), nil, nil)
	if !nw.ICC {
		add(setHairpin, cat(br, a, a, proto, port), nil, nil)
	}
	if to := cat(a, port); hip.IsValid() {
		add(mapHost, cat(hip.AsSlice(), proto, serviceKey(p.HostPort)), nil, to)
	} else {
		add(mapAny, cat(proto, serviceKey(p.HostPort)), nil, to)
	}
	if b.v4 {
		add(setLocalnet, br, nil, nil)
	}
	for _, sn := range b.subnets(nw) {
		add(setPubNets, cat(br, sn.Masked().Addr().AsSlice()), cat(br, lastAddr(sn).AsSlice()), nil)
	}
}

// forward is the filter chain between interfaces, in this order (first match wins):
//
//  1. between two ports of one berth bridge: chain intra decides
//  2. internal networks: nothing enters or leaves the bridge
//  3. replies and related packets of allowed connections
//  4. published ports: DNATed connections to Addr:Port, from anywhere, even another
//     berth bridge (as Docker's userland proxy would serve them)
//  5. isolation: nothing from one berth bridge to another (DOCKER-ISOLATION)
//  6. nothing else enters a non-internal bridge (no direct routing to sandboxes)
//  7. sandboxes of non-internal bridges may open connections out
//
// Each step is one rule and a set lookup, so the chain is the same for 1 network or
// 1,000: isolation is "iifname @open oifname @open", not a rule per pair of networks.
func (b builder) forward() []*rule {
	v4 := b.v4
	return []*rule{
		newRule().in(setPairs, iifField, oifField).jump(chainIntra),
		newRule().in(setInternal, iifField).drop(),
		newRule().in(setInternal, oifField).drop(),
		newRule().established().accept(),
		newRule().in(setPorts, oifField, addrField(v4, false), l4protoField, portField(false)).dnatted().accept(),
		newRule().in(setOpen, iifField).in(setOpen, oifField).drop(),
		newRule().in(setOpen, oifField).drop(),
		newRule().in(setOpen, iifField).accept(),
	}
}

// intra is the chain of traffic inside one bridge: ICC=true accepts; ICC=false drops all
// but replies, a sandbox's hairpin to its own published port, and link rows. Link rows
// are stateless, both ways (From to To's port, and To's answers from that port), as
// Docker's legacy links; so they also work in the bridge family, which has no conntrack.
func (b builder) intra() []*rule {
	v4 := b.v4
	return []*rule{
		newRule().established().accept(),
		newRule().in(setICC, iifField).accept(),
		newRule().in(setHairpin, oifField, addrField(v4, true), addrField(v4, false), l4protoField, portField(false)).dnatted().accept(),
		newRule().in(setLinks, iifField, addrField(v4, true), addrField(v4, false), l4protoField, portField(false)).accept(),
		newRule().in(setLinks, iifField, addrField(v4, false), addrField(v4, true), l4protoField, portField(true)).accept(),
		newRule().drop(),
	}
}

// dnat is the published-port translation, the same in prerouting (from other hosts and
// from sandboxes: hairpin) and output (the daemon netns' own processes, loopback too).
// Ports bound to one host address come first: they are the more specific.
func (b builder) dnat() []*rule {
	return []*rule{
		newRule().dnatMap(b.v4, mapHost, addrField(b.v4, false), l4protoField, portField(false)),
		newRule().localDst().dnatMap(b.v4, mapAny, l4protoField, portField(false)),
	}
}

// output is the dnat of the daemon netns' own connections. In IPv6, [::1]:HOSTPORT is
// left to the daemon's proxy socket there (see netmgr/portmap): DNATed to a sandbox, a
// packet from ::1 could not leave lo (IPv6 has no route_localnet).
func (b builder) output() []*rule {
	if b.v4 {
		return b.dnat()
	}
	return append([]*rule{newRule().addr(false, loopback6).ret()}, b.dnat()...)
}

var loopback6 = netip.MustParsePrefix("::1/128")

// loopback4 is the source of connections to 127.0.0.1:HOSTPORT; it must not leave the
// bridge untranslated.
var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// postrouting masquerades, in this order:
//   - loopback connections DNATed into a bridge (IPv4 only: needs route_localnet)
//   - hairpin: connections from a bridge's subnet DNATed back into that bridge, so the
//     answers come back through the daemon netns and are un-DNATed
//   - outbound: a subnet leaving its bridge, on networks with Masquerade. A subnet going
//     out of its own bridge returns first, so the last rule needs no per-network
//     "oifname != B".
func (b builder) postrouting() []*rule {
	var rs []*rule
	if b.v4 {
		rs = append(rs, newRule().in(setLocalnet, oifField).addr(true, loopback4).masquerade())
	}
	return append(rs,
		newRule().in(setPubNets, oifField, addrField(b.v4, true)).dnatted().masquerade(),
		newRule().in(setOwnNets, oifField, addrField(b.v4, true)).ret(),
		newRule().in(setMasqNets, addrField(b.v4, true)).masquerade())
}

// bridgeTable is the bridge family's table, or nil when no network has ICC off: on
// ICC=false networks, IP traffic switched between two ports of one bridge is dropped,
// except link rows and a sandbox's hairpin to its own published port; ARP passes. The
// chain cannot name the bridge (meta ibrname needs CONFIG_NFT_BRIDGE_META, which not every
// kernel has), so it matches packets with source and destination in one network's
// subnet (a set of subnet . subnet ranges), which berth's IPAM keeps distinct. IPv6
// link-local traffic between sandboxes is therefore not blocked here, only in the ip6
// table when br_netfilter passes bridged traffic to it.
func bridgeTable(s State) *table {
	if !slices.ContainsFunc(s.Networks, quiet) {
		return nil
	}
	t := &table{family: nftables.TableFamilyBridge, sets: bridgeSetDefs(), chains: []*chain{bridgeForward()}}
	nets := make(map[string]Network, len(s.Networks))
	add := collect(t.sets)
	for _, nw := range s.Networks {
		nets[nw.Bridge] = nw
		bridgeNetworkElems(nw, add)
	}
	for _, l := range s.Links {
		bridgeLinkElems(l, nets[l.Bridge], add)
	}
	for _, p := range s.Ports {
		bridgePortElems(p, nets[p.Bridge], add)
	}
	for _, st := range t.sets {
		st.finish()
	}
	return t
}

// quiet reports whether nw has rules in the bridge table: ICC off, and a subnet to match.
func quiet(nw Network) bool { return !nw.ICC && len(nw.Subnets) > 0 }

// famSuffix names the bridge table's sets of one family: links4, links6.
func famSuffix(v4 bool) string {
	if v4 {
		return "4"
	}
	return "6"
}

func bridgeSetDefs() []*set {
	var sets []*set
	for _, v4 := range []bool{true, false} {
		f := famSuffix(v4)
		sets = append(sets,
			&set{name: "links" + f, key: []kind{kAddr, kAddr, kProto, kService}, v4: v4},
			&set{name: "self" + f, key: []kind{kAddr, kAddr}, v4: v4},
			&set{name: "quiet" + f, key: []kind{kAddr, kAddr}, interval: true, v4: v4})
	}
	return sets
}

func bridgeForward() *chain {
	var rules []*rule
	for _, v4 := range []bool{true, false} {
		f := famSuffix(v4)
		rules = append(rules,
			newRule().etherType(v4).in("links"+f, addrField(v4, true), addrField(v4, false), l4protoField, portField(false)).accept(),
			newRule().etherType(v4).in("links"+f, addrField(v4, false), addrField(v4, true), l4protoField, portField(true)).accept(),
			// A sandbox's hairpin to its own published port, both ways: with
			// bridge-nf-call-iptables=1 it is DNATed (and its answer un-NATed) while
			// being bridged, so it passes here from the sandbox's port back to the same port.
			newRule().etherType(v4).in("self"+f, addrField(v4, true), addrField(v4, false)).accept(),
			newRule().etherType(v4).in("quiet"+f, addrField(v4, true), addrField(v4, false)).drop())
	}
	return &chain{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward,
		priority: bridgeFilter, prioName: "filter", rules: rules}
}

func bridgeNetworkElems(nw Network, add sink) {
	if !quiet(nw) {
		return
	}
	for _, sn := range nw.Subnets {
		first, last := sn.Masked().Addr().AsSlice(), lastAddr(sn).AsSlice()
		add("quiet"+famSuffix(sn.Addr().Is4()), cat(first, first), cat(last, last), nil)
	}
}

func bridgePortElems(p Port, nw Network, add sink) {
	if quiet(nw) && !nw.Internal {
		a := p.Addr.AsSlice()
		add("self"+famSuffix(p.Addr.Is4()), cat(a, a), nil, nil)
	}
}

func bridgeLinkElems(l Link, nw Network, add sink) {
	if quiet(nw) {
		add("links"+famSuffix(l.From.Is4()), cat(l.From.AsSlice(), l.To.AsSlice(), protoKey(l.Proto), serviceKey(l.Port)), nil, nil)
	}
}
