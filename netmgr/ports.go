package netmgr

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"berth/netmgr/portmap"
	"berth/store"
)

// ephemeralRange is the kernel's local port range, the pool Docker also picks host ports
// from; 32768-60999 (the kernel default) if it cannot be read.
func ephemeralRange() (lo, hi uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && l > 0 && l <= h && h <= 65535 {
				return uint16(l), uint16(h)
			}
		}
	}
	return 32768, 60999
}

// portsInUse maps the host ports (per protocol, portKey) published by every sandbox in
// snap to that sandbox's name.
func portsInUse(snap *store.Snapshot) map[string]string {
	used := map[string]string{}
	for _, sb := range snap.PublishingSandboxes() {
		for _, p := range sb.Ports {
			used[portKey(p)] = sb.Name
		}
	}
	return used
}

func portKey(p store.Port) string { return fmt.Sprintf("%s/%d", p.Proto, p.HostPort) }

// allocated is Docker's reason for a host port another container publishes ("Bind for
// 0.0.0.0:8080 failed: port is already allocated"), naming the sandbox that has it.
func allocated(p store.Port, by string) string {
	a := any4
	if p.HostIP.IsValid() {
		a = p.HostIP
	}
	return fmt.Sprintf("Bind for %s failed: port is already allocated (by sandbox %s)", netip.AddrPortFrom(a, p.HostPort), by)
}

// checkHostPorts refuses a requested host port that another sandbox publishes, or that
// the request gives twice. Two bindings of one host port and protocol conflict even on
// different host IPs: one DNAT rule per port keeps the ruleset simple to reason about.
// A range to choose from (HostPortEnd) is left to assignHostPorts.
func checkHostPorts(snap *store.Snapshot, specs []PublishSpec) error {
	used := portsInUse(snap)
	mine := map[string]bool{}
	for _, p := range specs {
		if p.HostPort == 0 || p.HostPortEnd != 0 {
			continue
		}
		if by, taken := used[portKey(p.Port)]; taken {
			return invalid(p.Field, p.Value, "%s", allocated(p.Port, by))
		}
		if mine[portKey(p.Port)] {
			return invalid(p.Field, p.Value, "host port %d/%s given twice", p.HostPort, p.Proto)
		}
		mine[portKey(p.Port)] = true
	}
	return nil
}

// assignHostPorts gives every binding its host port and calls hold for each with it, in
// order. A host port that was asked for is held or the whole call fails with hold's
// error. A range to choose from (-p 8000-8010:80), and the ephemeral range for -p PORT and
// -P, are tried from their first port, skipping those other sandboxes publish and those
// hold finds taken (portmap.IsInUse), as Docker skips ports another process has bound.
func assignHostPorts(snap *store.Snapshot, specs []PublishSpec, hold func(i int, p store.Port) error) ([]store.Port, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	used := portsInUse(snap)
	out := make([]store.Port, len(specs))
	for i, p := range specs {
		out[i] = p.Port
		if p.HostPort != 0 && p.HostPortEnd == 0 {
			used[portKey(p.Port)] = ""
		}
	}
	elo, ehi := ephemeralRange()
	next := int(elo) // where the next ephemeral search starts: the ports before it are held
	for i, p := range specs {
		if p.HostPort != 0 && p.HostPortEnd == 0 {
			if err := hold(i, p.Port); err != nil {
				return nil, err
			}
			continue
		}
		lo, hi, from := int(p.HostPort), int(p.HostPortEnd), int(p.HostPort)
		if p.HostPortEnd == 0 {
			lo, hi, from = int(elo), int(ehi), next
		}
		chosen := false
		for port := from; port <= hi && !chosen; port++ {
			cand := p.Port
			cand.HostPort = uint16(port)
			if _, taken := used[portKey(cand)]; taken {
				continue
			}
			err := hold(i, cand)
			if err != nil && !portmap.IsInUse(err) {
				return nil, err
			}
			if err == nil {
				out[i], chosen = cand, true
				used[portKey(cand)] = ""
				if p.HostPortEnd == 0 {
					next = port + 1
				}
			}
		}
		if !chosen && p.HostPortEnd != 0 {
			// Docker's words when a range has no free port left.
			return nil, invalid(p.Field, p.Value, "all ports are allocated (%d-%d)", lo, hi)
		}
		if !chosen {
			return nil, fmt.Errorf("no free host port left in %d-%d: %w", lo, hi, store.ErrConflict)
		}
	}
	return out, nil
}

// PortHolder holds the host sockets of published ports: portmap.Map.
type PortHolder interface {
	// Hold binds every binding for owner (a sandbox ID), all or none.
	Hold(owner string, bs []portmap.Binding) error
	// Release closes all of owner's sockets.
	Release(owner string)
}

// publishNetwork is the network a sandbox's published ports lead to: the first
// non-internal one (its default route's), as the firewall's DNAT rules take it; nil when
// there is none, and then nothing is published.
func publishNetwork(nets []*store.Network) *store.Network {
	for _, n := range nets {
		if !n.Internal {
			return n
		}
	}
	return nil
}

// sandboxNetworks are the networks of sb's endpoints, in the order joined.
func sandboxNetworks(snap *store.Snapshot, sb *store.Sandbox) []*store.Network {
	var nets []*store.Network
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		if n, err := snap.Network(ep.NetworkID); err == nil {
			nets = append(nets, n)
		}
	}
	return nets
}

var (
	any4 = netip.IPv4Unspecified()
	any6 = netip.IPv6Unspecified()
)

// hostAddrs are the host addresses p is bound to when it leads to network n: its HostIP;
// without one, the network's host_binding_ipv4 if it names an address; else, as Docker 28,
// both 0.0.0.0 and :: (an IPv4-only sandbox is reached over IPv6 through the proxy).
func hostAddrs(p store.Port, n *store.Network) []netip.Addr {
	if p.HostIP.IsValid() {
		return []netip.Addr{p.HostIP}
	}
	if a, err := netip.ParseAddr(n.Options[OptHostBinding]); err == nil && !a.Unmap().IsUnspecified() {
		return []netip.Addr{a.Unmap()}
	}
	return []netip.Addr{any4, any6}
}

// PortBindings lists the host sockets of sb's published ports, as `docker port` shows
// them: each port once per host address it is bound to (0.0.0.0 and :: without a host IP),
// with that address as HostIP. A sandbox on internal networks only publishes nothing.
func PortBindings(snap *store.Snapshot, sb *store.Sandbox) []store.Port {
	n := publishNetwork(sandboxNetworks(snap, sb))
	if n == nil {
		return nil
	}
	var out []store.Port
	for _, p := range sb.Ports {
		for _, a := range hostAddrs(p, n) {
			b := p
			b.HostIP = a
			out = append(out, b)
		}
	}
	return out
}

// portBindings are the sockets of one published port of sandbox sbID on network n. NAT
// carries what it can: IPv4 to a sandbox with an IPv4 address, with 127.0.0.1 among them
// (route_localnet; kept rather than proxied, so that one set of rules, with no goroutine
// per connection, serves every IPv4 address alike). Every IPv6 socket is a proxy: to an
// IPv4-only sandbox NAT cannot translate (and [::1] is never routed off the host: IPv6 has
// no route_localnet). IPv6 traffic to a dual-stack sandbox is DNATed before it reaches
// the socket; so is [::1] today, which then goes nowhere: the ip6 output chain would have
// to leave ::1 alone for this proxy to answer it.
func (m *Manager) portBindings(sbID string, p store.Port, n *store.Network) []portmap.Binding {
	var bs []portmap.Binding
	for _, a := range hostAddrs(p, n) {
		b := portmap.Binding{Proto: p.Proto, Host: netip.AddrPortFrom(a, p.HostPort)}
		if a.Is6() || !hasFamily(n.Subnets, false) || m.cfg.NoIPTables { // --iptables=false: no DNAT at all
			b.Target = m.proxyTarget(sbID, p.Port, a.Is6())
		}
		bs = append(bs, b)
	}
	return bs
}

// proxyTarget returns the proxy's target of a sandbox's port: its address on its publish
// network, of the family of the host socket (want6) if it has one, else of the other. It
// reads the records at each call, so it follows network connect and disconnect.
func (m *Manager) proxyTarget(sbID string, port uint16, want6 bool) func() (netip.AddrPort, error) {
	return func() (netip.AddrPort, error) {
		snap := m.cfg.Store.Snapshot()
		for _, ep := range snap.SandboxEndpoints(sbID) {
			n, err := snap.Network(ep.NetworkID)
			if err != nil || n.Internal {
				continue
			}
			a := ep.IPv4
			if want6 && ep.IPv6.IsValid() || !a.IsValid() {
				a = ep.IPv6
			}
			if !a.IsValid() {
				break
			}
			return netip.AddrPortFrom(a, port), nil
		}
		return netip.AddrPort{}, fmt.Errorf("sandbox %s: no address on a published network", store.ShortID(sbID))
	}
}

// holdPort binds the sockets of one port. The :: socket of a port without a host IP is
// left out where the daemon's netns has no IPv6 (as Docker does), rather than failing.
func (m *Manager) holdPort(sbID string, bs []portmap.Binding, implicit bool) error {
	err := m.cfg.Ports.Hold(sbID, bs)
	var be *portmap.BindError
	if implicit && errors.As(err, &be) && be.Binding.Host.Addr() == any6 && portmap.IsUnavailable(err) {
		m.cfg.Log.Debug("no IPv6 in the daemon netns: port bound on IPv4 only", "binding", be.Binding.String())
		return m.cfg.Ports.Hold(sbID, slices.DeleteFunc(bs, func(b portmap.Binding) bool { return b.Host.Addr() == any6 }))
	}
	return err
}

// holdPorts binds the host sockets of a planned sandbox's published ports and picks the
// host ports of ranges and of the -p PORT and -P forms, before anything else is made: a
// port another process has is refused in one line naming the --publish value, and nothing
// is left bound (all or nothing, for a range too). Without a PortHolder (unit tests)
// nothing is bound.
func (m *Manager) holdPorts(snap *store.Snapshot, p *sandboxPlan) error {
	sb := p.sb
	n := publishNetwork(p.networks)
	hold := func(i int, port store.Port) error {
		if m.cfg.Ports == nil || n == nil {
			return nil
		}
		err := m.holdPort(sb.ID, m.portBindings(sb.ID, port, n), !port.HostIP.IsValid())
		spec := p.publish[i]
		if (spec.HostPort == 0 || spec.HostPortEnd != 0) && portmap.IsInUse(err) {
			return err // assignHostPorts tries the next one
		}
		var be *portmap.BindError
		if errors.As(err, &be) {
			reason := be.Error()
			if portmap.IsInUse(err) {
				reason += " (taken by another process)"
			}
			return invalid(spec.Field, spec.Value, "%s", reason)
		}
		return err
	}
	ports, err := assignHostPorts(snap, p.publish, hold)
	if err != nil {
		m.releasePorts(sb.ID)
		return err
	}
	sb.Ports = ports
	return nil
}

// releasePorts closes the host sockets of sandbox sbID, if any.
func (m *Manager) releasePorts(sbID string) {
	if m.cfg.Ports != nil {
		m.cfg.Ports.Release(sbID)
	}
}

// restorePorts binds again the host sockets of every sandbox's published ports after a
// start. A port some other process took while the daemon was down is logged and left
// out: the sandbox stays, and the rest of its ports are held.
func (m *Manager) restorePorts(snap *store.Snapshot) {
	if m.cfg.Ports == nil {
		return
	}
	held := 0
	for _, sb := range snap.PublishingSandboxes() {
		n := publishNetwork(sandboxNetworks(snap, sb))
		if n == nil {
			continue
		}
		for _, p := range sb.Ports {
			for _, b := range m.portBindings(sb.ID, p, n) {
				err := m.holdPort(sb.ID, []portmap.Binding{b}, !p.HostIP.IsValid())
				if err != nil {
					m.cfg.Log.Warn("published port not held", "sandbox", sb.Name, "port", fmt.Sprintf("%d/%s", p.Port, p.Proto), "err", err)
					continue
				}
				held++
			}
		}
	}
	if held > 0 {
		m.cfg.Log.Info("published ports held", "sockets", held)
	}
}
