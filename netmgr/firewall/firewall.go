// Package firewall turns berth's bridge data plane (outbound NAT, published ports, ICC,
// internal networks, legacy links, isolation between networks) into nftables rules of its
// own, and installs them in the current netns.
//
// Ruleset renders a State purely ("desired state → ruleset"); a Firewall installs it. The
// ip and ip6 tables have a fixed set of rules that look up named sets and maps (bridges,
// published ports, subnets), so one more network or port is a few set elements, not rules,
// and isolation between N networks is one rule, not N². A Firewall remembers what it
// installed and sends only the elements (and bridge-table chains) that changed; its first
// Apply rebuilds berth's tables whole in one batch, so a restart converges to exactly the
// desired state, stale elements removed. Applying the same State twice gives the same
// ruleset. The package knows nothing of the store, and never flushes or changes a table
// it does not own (Docker's, libvirt's, firewalld's), but for berth's own tagged accept
// rules in their forward chains (foreign.go).
//
// berth owns three tables, all named "berth":
//
//	table ip berth      forward (filter), prerouting/output (dstnat), postrouting (srcnat)
//	table ip6 berth     the same for IPv6
//	table bridge berth  forward (filter): ICC=false between ports of one bridge
//
// A fourth, table inet berth, holds chain user: the admin's own rules, which berth jumps to
// before its own and never flushes (Docker's DOCKER-USER; see user.go).
//
// The bridge table exists only while a network has ICC off: traffic between two sandboxes
// of one bridge is switched at layer 2 and reaches the ip/ip6 forward hook only when
// br_netfilter passes it there (bridge-nf-call-iptables=1), which berth neither needs nor
// turns on. Both cases are covered: the ip/ip6 rules by interface names, the bridge rules
// by subnets (see bridgeForward).
//
// With bridge-nf-call-iptables=1, a sandbox reaching its own published port through a
// host address (hairpin) is DNATed while its frame is still being bridged, and is sent
// back out of the port it came in on: that needs hairpin mode on the bridge port (Docker
// sets it when its userland proxy is off). That is a link setting, not a rule.
//
// Published ports are NAT here; what NAT cannot carry (IPv6 to an IPv4-only sandbox, and
// [::1]) is proxied by the daemon's sockets (netmgr/portmap). Loopback access from the
// daemon's netns (127.0.0.1:HOSTPORT) needs net.ipv4.conf.BRIDGE.route_localnet=1, which
// Apply sets on bridges with published IPv4 ports (as Docker does), plus a masquerade of
// 127.0.0.0/8 going out of the bridge. IPv6 has no such switch, so the ip6 output chain
// leaves [::1]:HOSTPORT alone for the proxy.
//
// Rules in other tables still apply: an accept here does not override a drop elsewhere
// (for example the iptables FORWARD policy DROP of Docker's engine), which is why
// OpenForward adds berth's bridges to those chains. Missing, Forget and Changes let the
// daemon notice and repair what others take away (check.go).
package firewall

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// TableName is the name of each of berth's tables (families ip, ip6 and bridge, and the
// user table, inet).
const TableName = "berth"

// Network is one berth bridge network.
type Network struct {
	Bridge     string         // device name; at most 15 bytes
	Subnets    []netip.Prefix // IPv4 and IPv6, masked or not
	Internal   bool           // no traffic between the bridge and anything else
	ICC        bool           // com.docker.network.bridge.enable_icc
	Masquerade bool           // com.docker.network.bridge.enable_ip_masquerade (Docker's default: true)
	// HostBindingIPv4 is com.docker.network.bridge.host_binding_ipv4: the host address of
	// ports published without one. Zero or unspecified: all addresses of the daemon netns.
	// When it is an address of one family, ports of the other family without a HostIP
	// are not published (Docker binds only to that address).
	HostBindingIPv4 netip.Addr
}

// Port is a published port of one endpoint: HostIP:HostPort → Addr:Port.
type Port struct {
	Proto    string     // "tcp" or "udp"
	HostIP   netip.Addr // zero or unspecified: all addresses of the daemon netns
	HostPort uint16     // non-zero
	Addr     netip.Addr // the sandbox's address on Bridge; same family as HostIP if set
	Port     uint16     // non-zero
	Bridge   string     // a Network's Bridge; ports on internal networks are not published
}

// Link is one legacy link row: on an ICC=false bridge, From may open connections to To's
// exposed Port (and To answers). One row per exposed port. Rows on ICC=true bridges have
// no effect.
type Link struct {
	Bridge   string
	From, To netip.Addr // same family
	Proto    string     // "tcp" or "udp"
	Port     uint16     // non-zero
}

// State is everything the rules are built from. Order does not matter; duplicates are
// ignored.
type State struct {
	Networks []Network
	Ports    []Port
	Links    []Link
}

// normalize validates s and returns a sorted, deduplicated copy, so that the ruleset
// depends only on the set of inputs.
func normalize(s State) (State, error) {
	n, err := clean(s)
	if err != nil {
		return State{}, err
	}
	slices.SortFunc(n.Networks, func(a, b Network) int { return cmp.Compare(a.Bridge, b.Bridge) })
	slices.SortFunc(n.Ports, comparePorts)
	n.Ports = slices.Compact(n.Ports)
	slices.SortFunc(n.Links, compareLinks)
	n.Links = slices.Compact(n.Links)
	return n, nil
}

// clean validates s and returns a copy with every item in its canonical form (subnets
// masked and sorted, addresses unmapped), in the order given.
func clean(s State) (State, error) {
	var n State
	seen := make(map[string]bool, len(s.Networks))
	for _, nw := range s.Networks {
		c, err := cleanNetwork(nw)
		if err != nil {
			return State{}, err
		}
		if seen[nw.Bridge] {
			return State{}, fmt.Errorf("network bridge %q: listed twice", nw.Bridge)
		}
		seen[nw.Bridge] = true
		n.Networks = append(n.Networks, c)
	}
	isNet := func(br string) bool { return seen[br] }
	n.Ports = make([]Port, 0, len(s.Ports))
	for _, p := range s.Ports {
		c, err := cleanPort(p, isNet)
		if err != nil {
			return State{}, err
		}
		n.Ports = append(n.Ports, c)
	}
	for _, l := range s.Links {
		c, err := cleanLink(l, isNet)
		if err != nil {
			return State{}, err
		}
		n.Links = append(n.Links, c)
	}
	return n, nil
}

func cleanNetwork(nw Network) (Network, error) {
	if nw.Bridge == "" || len(nw.Bridge) > 15 {
		return Network{}, fmt.Errorf("network bridge %q: want 1 to 15 bytes", nw.Bridge)
	}
	nw.Subnets = slices.Clone(nw.Subnets)
	for i, p := range nw.Subnets {
		if !p.IsValid() {
			return Network{}, fmt.Errorf("network %s: invalid subnet", nw.Bridge)
		}
		nw.Subnets[i] = p.Masked()
	}
	slices.SortFunc(nw.Subnets, netip.Prefix.Compare)
	nw.Subnets = slices.Compact(nw.Subnets)
	return nw, nil
}

// cleanPort checks p (isNet tells the bridges of networks) and returns its canonical form.
func cleanPort(p Port, isNet func(string) bool) (Port, error) {
	if err := checkPort(p, isNet); err != nil {
		return Port{}, fmt.Errorf("port %s %s:%d -> %s:%d: %w", p.Proto, p.HostIP, p.HostPort, p.Addr, p.Port, err)
	}
	if p.HostIP.IsValid() {
		p.HostIP = p.HostIP.Unmap()
	}
	p.Addr = p.Addr.Unmap()
	return p, nil
}

func cleanLink(l Link, isNet func(string) bool) (Link, error) {
	if err := checkLink(l, isNet); err != nil {
		return Link{}, fmt.Errorf("link %s -> %s %s/%d: %w", l.From, l.To, l.Proto, l.Port, err)
	}
	l.From, l.To = l.From.Unmap(), l.To.Unmap()
	return l, nil
}

func checkPort(p Port, isNet func(string) bool) error {
	switch {
	case p.Proto != "tcp" && p.Proto != "udp":
		return fmt.Errorf("protocol %q: want tcp or udp", p.Proto)
	case p.HostPort == 0 || p.Port == 0:
		return fmt.Errorf("port 0")
	case !p.Addr.IsValid():
		return fmt.Errorf("no sandbox address")
	case p.HostIP.IsValid() && p.HostIP.Unmap().Is4() != p.Addr.Unmap().Is4():
		return fmt.Errorf("host and sandbox addresses of different families")
	case !isNet(p.Bridge):
		return fmt.Errorf("bridge %q: not a network", p.Bridge)
	}
	return nil
}

func checkLink(l Link, isNet func(string) bool) error {
	switch {
	case l.Proto != "tcp" && l.Proto != "udp":
		return fmt.Errorf("protocol %q: want tcp or udp", l.Proto)
	case l.Port == 0:
		return fmt.Errorf("port 0")
	case !l.From.IsValid() || !l.To.IsValid() || l.From.Unmap().Is4() != l.To.Unmap().Is4():
		return fmt.Errorf("want two addresses of one family")
	case !isNet(l.Bridge):
		return fmt.Errorf("bridge %q: not a network", l.Bridge)
	}
	return nil
}

func comparePorts(a, b Port) int {
	return cmp.Or(
		cmp.Compare(a.Bridge, b.Bridge),
		a.Addr.Compare(b.Addr),
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.Port, b.Port),
		cmp.Compare(a.HostPort, b.HostPort),
		a.HostIP.Compare(b.HostIP),
	)
}

func compareLinks(a, b Link) int {
	return cmp.Or(
		cmp.Compare(a.Bridge, b.Bridge),
		a.From.Compare(b.From),
		a.To.Compare(b.To),
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.Port, b.Port),
	)
}

// hostIP is the address a port is published on: ok is false when it is not published in
// this family at all (see Network.HostBindingIPv4). A zero addr means every local address.
func hostIP(p Port, nw Network) (addr netip.Addr, ok bool) {
	if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
		return p.HostIP, true
	}
	if p.HostIP.IsValid() { // 0.0.0.0 or ::, given explicitly
		return netip.Addr{}, true
	}
	def := nw.HostBindingIPv4.Unmap()
	if !def.IsValid() || def.IsUnspecified() {
		return netip.Addr{}, true
	}
	if def.Is4() != p.Addr.Is4() {
		return netip.Addr{}, false
	}
	return def, true
}
