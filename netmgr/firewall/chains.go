package firewall

import (
	"net/netip"
	"slices"
)

// forward is the filter chain between interfaces, in this order (first match wins):
//
//  1. internal networks: nothing enters or leaves the bridge (both directions)
//  2. replies and related packets of allowed connections
//  3. published ports: DNATed connections to Addr:Port, from anywhere, even another
//     berth bridge (as Docker's userland proxy would serve them); on ICC=false networks
//     not from the sandbox's peers on that bridge, only from itself (hairpin)
//  4. isolation: nothing from one berth bridge to another (DOCKER-ISOLATION)
//  5. inside one bridge: ICC=false drops all but link rows; ICC=true accepts
//  6. nothing else enters a non-internal bridge (no direct routing to sandboxes)
//  7. sandboxes of non-internal bridges may open connections out
//
// Rules 1 and 4 match interface names only, so they are the same in ip and ip6.
func (b builder) forward() []*rule {
	var rs []*rule
	var open []Network // non-internal
	for _, nw := range b.s.Networks {
		if nw.Internal {
			rs = append(rs,
				newRule().iif(nw.Bridge, true).oif(nw.Bridge, false).drop(),
				newRule().oif(nw.Bridge, true).iif(nw.Bridge, false).drop())
		} else {
			open = append(open, nw)
		}
	}
	rs = append(rs, newRule().established().accept())
	for _, p := range b.ports() {
		if b.network(p.Bridge).ICC {
			rs = append(rs, newRule().oif(p.Bridge, true).addr(false, host(p.Addr)).
				l4port(p.Proto, false, p.Port).dnatted().accept())
			continue
		}
		// ICC off: not from the sandbox's peers, but from itself (hairpin).
		rs = append(rs,
			newRule().oif(p.Bridge, true).iif(p.Bridge, false).addr(false, host(p.Addr)).
				l4port(p.Proto, false, p.Port).dnatted().accept(),
			newRule().oif(p.Bridge, true).iif(p.Bridge, true).addr(true, host(p.Addr)).addr(false, host(p.Addr)).
				l4port(p.Proto, false, p.Port).dnatted().accept())
	}
	for _, from := range open {
		for _, to := range open {
			if from.Bridge != to.Bridge {
				rs = append(rs, newRule().iif(from.Bridge, true).oif(to.Bridge, true).drop())
			}
		}
	}
	for _, nw := range b.s.Networks {
		if nw.ICC {
			rs = append(rs, newRule().iif(nw.Bridge, true).oif(nw.Bridge, true).accept())
			continue
		}
		for _, l := range b.links(nw.Bridge) {
			for _, r := range linkRules(l) {
				rs = append(rs, newRule().iif(nw.Bridge, true).oif(nw.Bridge, true).merge(r))
			}
		}
		rs = append(rs, newRule().iif(nw.Bridge, true).oif(nw.Bridge, true).drop())
	}
	for _, nw := range open {
		rs = append(rs, newRule().oif(nw.Bridge, true).drop())
	}
	for _, nw := range open {
		rs = append(rs, newRule().iif(nw.Bridge, true).accept())
	}
	return rs
}

// linkRules are the two accept rules of one link row, as Docker's legacy links: From to
// To's port, and To's answers from that port (stateless, so they also work in the bridge
// family, which has no conntrack).
func linkRules(l Link) []*rule {
	return []*rule{
		newRule().addr(true, host(l.From)).addr(false, host(l.To)).l4port(l.Proto, false, l.Port).accept(),
		newRule().addr(true, host(l.To)).addr(false, host(l.From)).l4port(l.Proto, true, l.Port).accept(),
	}
}

// host is the single-address prefix of a.
func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// merge appends the matches and statements of o to r.
func (r *rule) merge(o *rule) *rule {
	r.exprs = append(r.exprs, o.exprs...)
	r.text = append(r.text, o.text...)
	return r
}

// dnat is the published-port translation, the same in prerouting (from other hosts and
// from sandboxes: hairpin) and output (the daemon netns' own processes, loopback too).
func (b builder) dnat() []*rule {
	var rs []*rule
	for _, p := range b.ports() {
		r := newRule()
		if p.HostIP.IsValid() {
			r.addr(false, host(p.HostIP))
		} else {
			r.localDst()
		}
		rs = append(rs, r.l4port(p.Proto, false, p.HostPort).dnat(p.Addr, p.Port))
	}
	return rs
}

// loopback4 is the source of connections to 127.0.0.1:HOSTPORT; it must not leave the
// bridge untranslated.
var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// postrouting masquerades, in this order:
//   - loopback connections DNATed into a bridge (IPv4 only: needs route_localnet)
//   - hairpin: connections from a bridge's subnet DNATed back into that bridge, so the
//     answers come back through the daemon netns and are un-DNATed
//   - outbound: a subnet leaving its bridge, on networks with Masquerade
func (b builder) postrouting() []*rule {
	var rs []*rule
	if b.v4 {
		for _, br := range b.published() {
			rs = append(rs, newRule().oif(br, true).addr(true, loopback4).masquerade())
		}
	}
	for _, br := range b.published() {
		for _, sn := range b.subnets(b.network(br)) {
			rs = append(rs, newRule().oif(br, true).addr(true, sn).dnatted().masquerade())
		}
	}
	for _, nw := range b.s.Networks {
		if nw.Internal || !nw.Masquerade {
			continue
		}
		for _, sn := range b.subnets(nw) {
			rs = append(rs, newRule().oif(nw.Bridge, false).addr(true, sn).masquerade())
		}
	}
	return rs
}

// bridgeForward is the bridge family's forward chain: on ICC=false networks, IP traffic
// switched between two ports of one bridge is dropped, except link rows and a sandbox's
// hairpin to its own published port; ARP passes. The
// chain cannot name the bridge (meta ibrname needs CONFIG_NFT_BRIDGE_META, which not every
// kernel has), so it matches packets with source and destination in the network's
// subnets, which berth's IPAM keeps distinct. IPv6 link-local traffic between sandboxes
// is therefore not blocked here, only in the ip6 table when br_netfilter passes bridged
// traffic to it.
func bridgeForward(s State) []*rule {
	var rs []*rule
	for _, nw := range s.Networks {
		if nw.ICC || len(nw.Subnets) == 0 {
			continue
		}
		for _, l := range s.Links {
			if l.Bridge != nw.Bridge {
				continue
			}
			for _, r := range linkRules(l) {
				rs = append(rs, newRule().etherType(l.From.Is4()).merge(r))
			}
		}
		// A sandbox's hairpin to its own published port, both ways: with
		// bridge-nf-call-iptables=1 it is DNATed (and its answer un-NATed) while being
		// bridged, so it passes here from the sandbox's port back to the same port.
		var self []netip.Addr
		for _, p := range s.Ports {
			if p.Bridge == nw.Bridge && !nw.Internal && !slices.Contains(self, p.Addr) {
				self = append(self, p.Addr)
				rs = append(rs, newRule().etherType(p.Addr.Is4()).addr(true, host(p.Addr)).addr(false, host(p.Addr)).accept())
			}
		}
		for _, sn := range nw.Subnets {
			rs = append(rs, newRule().etherType(sn.Addr().Is4()).addr(true, sn).addr(false, sn).drop())
		}
	}
	return rs
}
