package firewall

import (
	"net/netip"

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

// sets builds the sets of this family with their elements.
func (b builder) sets() []*set {
	mk := func(name string, key, data []kind, interval bool) *set {
		return &set{name: name, key: key, data: data, interval: interval, v4: b.v4}
	}
	pairs := mk(setPairs, []kind{kIfname, kIfname}, nil, false)
	internal := mk(setInternal, []kind{kIfname}, nil, false)
	open := mk(setOpen, []kind{kIfname}, nil, false)
	icc := mk(setICC, []kind{kIfname}, nil, false)
	ports := mk(setPorts, []kind{kIfname, kAddr, kProto, kService}, nil, false)
	hairpin := mk(setHairpin, []kind{kIfname, kAddr, kAddr, kProto, kService}, nil, false)
	links := mk(setLinks, []kind{kIfname, kAddr, kAddr, kProto, kService}, nil, false)
	host := mk(mapHost, []kind{kAddr, kProto, kService}, []kind{kAddr, kService}, false)
	anyp := mk(mapAny, []kind{kProto, kService}, []kind{kAddr, kService}, false)
	pubnets := mk(setPubNets, []kind{kIfname, kAddr}, nil, true)
	ownnets := mk(setOwnNets, []kind{kIfname, kAddr}, nil, true)
	masq := mk(setMasqNets, []kind{kAddr}, nil, true)
	all := []*set{pairs, internal, open, icc, ports, hairpin, links, host, anyp, pubnets, ownnets, masq}
	var localnet *set
	if b.v4 {
		localnet = mk(setLocalnet, []kind{kIfname}, nil, false)
		all = append(all, localnet)
	}

	for _, nw := range b.s.Networks {
		br := ifnameKey(nw.Bridge)
		pairs.add(cat(br, br), nil, nil)
		if nw.Internal {
			internal.add(br, nil, nil)
		} else {
			open.add(br, nil, nil)
		}
		if nw.ICC {
			icc.add(br, nil, nil)
		} else {
			for _, l := range b.links(nw.Bridge) {
				links.add(cat(br, l.From.AsSlice(), l.To.AsSlice(), protoKey(l.Proto), serviceKey(l.Port)), nil, nil)
			}
		}
		if nw.Internal || !nw.Masquerade {
			continue
		}
		for _, sn := range b.subnets(nw) {
			first, last := sn.Masked().Addr().AsSlice(), lastAddr(sn).AsSlice()
			ownnets.add(cat(br, first), cat(br, last), nil)
			masq.add(first, last, nil)
		}
	}
	for _, p := range b.ports() {
		br, a, proto, port := ifnameKey(p.Bridge), p.Addr.AsSlice(), protoKey(p.Proto), serviceKey(p.Port)
		ports.add(cat(br, a, proto, port), nil, nil)
		if !b.network(p.Bridge).ICC {
			hairpin.add(cat(br, a, a, proto, port), nil, nil)
		}
		to := cat(a, port)
		if p.HostIP.IsValid() {
			host.add(cat(p.HostIP.AsSlice(), proto, serviceKey(p.HostPort)), nil, to)
		} else {
			anyp.add(cat(proto, serviceKey(p.HostPort)), nil, to)
		}
	}
	for _, br := range b.published() {
		k := ifnameKey(br)
		if localnet != nil {
			localnet.add(k, nil, nil)
		}
		for _, sn := range b.subnets(b.network(br)) {
			pubnets.add(cat(k, sn.Masked().Addr().AsSlice()), cat(k, lastAddr(sn).AsSlice()), nil)
		}
	}
	for _, s := range all {
		s.finish()
	}
	return all
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

// host is the single-address prefix of a.
func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// bridgeTable is the bridge family's table, or nil when no network has ICC off: on
// ICC=false networks, IP traffic switched between two ports of one bridge is dropped,
// except link rows and a sandbox's hairpin to its own published port; ARP passes. The
// chain cannot name the bridge (meta ibrname needs CONFIG_NFT_BRIDGE_META, which not every
// kernel has), so it matches packets with source and destination in one network's
// subnet (a set of subnet . subnet ranges), which berth's IPAM keeps distinct. IPv6
// link-local traffic between sandboxes is therefore not blocked here, only in the ip6
// table when br_netfilter passes bridged traffic to it.
func bridgeTable(s State) *table {
	quiet := map[string]bool{} // ICC=false bridges with a subnet
	internal := map[string]bool{}
	for _, nw := range s.Networks {
		if !nw.ICC && len(nw.Subnets) > 0 {
			quiet[nw.Bridge] = true
			internal[nw.Bridge] = nw.Internal
		}
	}
	if len(quiet) == 0 {
		return nil
	}
	t := &table{family: nftables.TableFamilyBridge}
	var rules []*rule
	sets := map[bool][3]*set{}
	for _, v4 := range []bool{true, false} {
		f := "6"
		if v4 {
			f = "4"
		}
		links := &set{name: "links" + f, key: []kind{kAddr, kAddr, kProto, kService}, v4: v4}
		self := &set{name: "self" + f, key: []kind{kAddr, kAddr}, v4: v4}
		quietNets := &set{name: "quiet" + f, key: []kind{kAddr, kAddr}, interval: true, v4: v4}
		sets[v4] = [3]*set{links, self, quietNets}
		t.sets = append(t.sets, links, self, quietNets)
		rules = append(rules,
			newRule().etherType(v4).in(links.name, addrField(v4, true), addrField(v4, false), l4protoField, portField(false)).accept(),
			newRule().etherType(v4).in(links.name, addrField(v4, false), addrField(v4, true), l4protoField, portField(true)).accept(),
			// A sandbox's hairpin to its own published port, both ways: with
			// bridge-nf-call-iptables=1 it is DNATed (and its answer un-NATed) while
			// being bridged, so it passes here from the sandbox's port back to the same port.
			newRule().etherType(v4).in(self.name, addrField(v4, true), addrField(v4, false)).accept(),
			newRule().etherType(v4).in(quietNets.name, addrField(v4, true), addrField(v4, false)).drop())
	}
	for _, l := range s.Links {
		if quiet[l.Bridge] {
			sets[l.From.Is4()][0].add(cat(l.From.AsSlice(), l.To.AsSlice(), protoKey(l.Proto), serviceKey(l.Port)), nil, nil)
		}
	}
	for _, p := range s.Ports {
		if quiet[p.Bridge] && !internal[p.Bridge] {
			a := p.Addr.AsSlice()
			sets[p.Addr.Is4()][1].add(cat(a, a), nil, nil)
		}
	}
	for _, nw := range s.Networks {
		if !quiet[nw.Bridge] {
			continue
		}
		for _, sn := range nw.Subnets {
			first, last := sn.Masked().Addr().AsSlice(), lastAddr(sn).AsSlice()
			sets[sn.Addr().Is4()][2].add(cat(first, first), cat(last, last), nil)
		}
	}
	for _, st := range t.sets {
		st.finish()
	}
	t.chains = []*chain{{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward,
		priority: bridgeFilter, prioName: "filter", rules: rules}}
	return t
}
