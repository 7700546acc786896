package netmgr

import (
	"fmt"
	"net/netip"
	"reflect"
	"strconv"

	"berth/netmgr/firewall"
	"berth/store"
)

// The data plane (NAT, published ports, ICC, isolation) is a pure function of the records:
// after every change the desired state is derived from a snapshot, and the firewall sends
// the kernel the difference from what it installed last (set elements); the first apply
// of a run rebuilds berth's tables, so a restart never leaves a stale rule behind.

// firewallState derives the firewall's input from the records.
func firewallState(snap *store.Snapshot) firewall.State {
	var st firewall.State
	nets := snap.Networks()
	st.Networks = make([]firewall.Network, 0, len(nets))
	byID := make(map[string]*store.Network, len(nets)) // one lookup table instead of a store lookup per endpoint
	for _, n := range nets {
		byID[n.ID] = n
		// An overlay network's bridge is its sandboxes' gateway on this host, so it has a
		// bridge network's rules: NAT, published ports, ICC, isolation from the others.
		if !n.Bridged() {
			continue
		}
		fn := firewall.Network{Bridge: n.Bridge, Internal: n.Internal, ICC: n.ICC, Masquerade: true}
		if b, err := strconv.ParseBool(n.Options[OptMasquerade]); err == nil {
			fn.Masquerade = b // every form ValidateNetworkCreate accepts: "0" and "f" too
		}
		for _, s := range n.Subnets {
			fn.Subnets = append(fn.Subnets, s.Subnet)
		}
		if a, err := netip.ParseAddr(n.Options[OptHostBinding]); err == nil {
			fn.HostBindingIPv4 = a.Unmap()
		}
		st.Networks = append(st.Networks, fn)
	}
	// Indexes give the only sandboxes and endpoints that add rows, so the cost follows the
	// networks, published ports and links, not the number of sandboxes.
	pubs := snap.PublishingSandboxes()
	n := 0
	for _, sb := range pubs {
		n += 2 * len(sb.Ports) // IPv4 and IPv6: sized once, not grown through thousands of ports
	}
	st.Ports = make([]firewall.Port, 0, n)
	for _, sb := range pubs {
		st.Ports = appendPorts(st.Ports, snap, byID, sb)
	}
	for _, ep := range snap.LinkingEndpoints() {
		st.Links = append(st.Links, linkRows(snap, ep)...)
	}
	return st
}

// appendPorts appends a sandbox's published ports, mapped to its address on the first
// non-internal network (the one its default route uses), as Docker does.
func appendPorts(out []firewall.Port, snap *store.Snapshot, nets map[string]*store.Network, sb *store.Sandbox) []firewall.Port {
	if len(sb.Ports) == 0 {
		return out
	}
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		n := nets[ep.NetworkID]
		if n == nil || n.Internal || !n.Bridged() {
			continue // a macvlan or ipvlan address is on the LAN itself: nothing to map
		}
		for _, p := range sb.Ports {
			for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
				if !a.IsValid() || (p.HostIP.IsValid() && p.HostIP.Is4() != a.Is4()) {
					continue
				}
				out = append(out, firewall.Port{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort,
					Addr: a, Port: p.Port, Bridge: n.Bridge})
			}
		}
		return out
	}
	return out
}

// linkRows opens, on ICC=false bridges, each legacy link's pair for the target's exposed ports.
func linkRows(snap *store.Snapshot, ep *store.Endpoint) []firewall.Link {
	n, err := snap.Network(ep.NetworkID)
	if err != nil || n.ICC {
		return nil
	}
	var out []firewall.Link
	for _, l := range ep.Links {
		target, err := snap.SandboxByName(l.Target)
		if err != nil {
			continue
		}
		tep, err := snap.EndpointOf(n.ID, target.ID)
		if err != nil {
			continue
		}
		for _, p := range target.Expose {
			for _, pair := range [][2]netip.Addr{{ep.IPv4, tep.IPv4}, {ep.IPv6, tep.IPv6}} {
				if pair[0].IsValid() && pair[1].IsValid() {
					out = append(out, firewall.Link{Bridge: n.Bridge, From: pair[0], To: pair[1], Proto: p.Proto, Port: p.Port})
				}
			}
		}
	}
	return out
}

// syncFirewall applies the ruleset of the current records and, if asked, turns on IP
// forwarding once a network needs it (Docker's --ip-forward). A state equal to the one
// last applied is not applied again: most changes (a sandbox without published ports or
// links) leave the ruleset as it is. Restore always applies (applied starts nil), and
// the first apply of a run rebuilds berth's tables, so rules changed behind berth's back
// are put right at the next start. Call with mu held.
func (m *Manager) syncFirewall() error {
	if m.cfg.Firewall == nil {
		return nil
	}
	st := firewallState(m.cfg.Store.Snapshot())
	if m.applied != nil && reflect.DeepEqual(*m.applied, st) {
		return nil
	}
	m.applied = nil // until this one is in
	if err := m.cfg.Firewall(st); err != nil {
		return err // firewall errors say "apply firewall: ..." already
	}
	if err := m.enableForwarding(st); err != nil {
		return err
	}
	m.applied = &st
	return nil
}

// enableForwarding turns on IP forwarding, if configured, once a non-internal network of
// st needs it.
func (m *Manager) enableForwarding(st firewall.State) error {
	if !m.cfg.IPForward {
		return nil
	}
	v4, v6 := false, false
	for _, n := range st.Networks {
		if n.Internal {
			continue
		}
		for _, s := range n.Subnets {
			v4, v6 = v4 || s.Addr().Is4(), v6 || s.Addr().Is6()
		}
	}
	if v4 || v6 {
		if err := firewall.EnableForwarding(v6); err != nil {
			return fmt.Errorf("enable ip forwarding: %w", err)
		}
	}
	return nil
}

// syncFirewallOrWarn is for changes that already happened (removals): the rules of the new
// state are tried, and a failure is logged, not returned.
func (m *Manager) syncFirewallOrWarn(op string) {
	if err := m.syncFirewall(); err != nil {
		m.cfg.Log.Warn("firewall after "+op, "err", err)
	}
}
