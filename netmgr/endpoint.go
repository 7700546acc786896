package netmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"berth/api"
	"berth/store"
)

// checkEndpointReq applies the rules that depend on the network (Docker's errors).
func checkEndpointReq(snap *store.Snapshot, n *store.Network, sb *store.Sandbox, r EndpointSpec) error {
	if n.ConfigOnly {
		return invalid("network", n.Name, "cannot create endpoint on configuration-only network")
	}
	if !n.Bridged() && !n.OnParent() {
		return invalid("network", n.Name, "sandboxes join %s with --network %s, not as a second network", n.Name, n.Name)
	}
	if n.Driver == store.DriverIpvlan && r.MAC != nil {
		return invalid("mac-address", r.MAC.String(), "an ipvlan interface has the MAC address of its parent %s", n.Parent.Name)
	}
	if passthru(n) && r.MAC != nil {
		return invalid("mac-address", r.MAC.String(), "a passthru macvlan interface has the MAC address of its parent %s", n.Parent.Name)
	}
	if n.Predefined {
		if len(r.Aliases) > 0 {
			return invalid("alias", r.Aliases[0], "network-scoped aliases are only supported for user-defined networks")
		}
		// Name the flag that was given: an unset netip.Addr prints as "invalid IP".
		if r.IPv4.IsValid() {
			return invalid("ip", r.IPv4.String(), "user specified IP address is supported on user defined networks only")
		}
		if r.IPv6.IsValid() {
			return invalid("ip6", r.IPv6.String(), "user specified IP address is supported on user defined networks only")
		}
		for _, l := range r.Links {
			t, err := snap.SandboxByName(l.Target)
			if err != nil {
				return invalid("link", l.Target, "no such sandbox")
			}
			if _, err := snap.EndpointOf(n.ID, t.ID); err != nil {
				return invalid("link", l.Target, "Cannot link to %s, as it does not belong to the default network", l.Target)
			}
		}
	}
	for _, l := range r.Links {
		if strings.EqualFold(l.Target, sb.Name) {
			return invalid("link", l.Target, "a sandbox cannot link to itself")
		}
	}
	return nil
}

// dnsNames is what an endpoint answers to, in Docker's order: name, aliases, short ID,
// hostname; lower-cased (lookups are case-insensitive) and without duplicates.
func dnsNames(sb *store.Sandbox, aliases []string) []string {
	var out []string
	add := func(s string) {
		s = strings.ToLower(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(sb.Name)
	for _, a := range aliases {
		add(strings.TrimSuffix(a, "."))
	}
	add(store.ShortID(sb.ID))
	add(sb.Hostname)
	return out
}

// nextIfName returns the lowest ethN not used by the sandbox's endpoints.
func nextIfName(eps []*store.Endpoint) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("eth%d", i)
		used := false
		for _, ep := range eps {
			used = used || ep.IfName == name
		}
		if !used {
			return name
		}
	}
}

// planEndpoint plans a new endpoint of sb on n from snap, recording nothing: its addresses
// are r's or the lowest free ones, its interface the lowest ethN that eps (sb's other
// endpoints) leave; q holds the addresses of veths still being deleted. putEndpointTx
// records it.
func planEndpoint(snap *store.Snapshot, sb *store.Sandbox, n *store.Network, eps []*store.Endpoint, r EndpointSpec, q *reaper) (*store.Endpoint, error) {
	ep := &store.Endpoint{ID: newID(), NetworkID: n.ID, SandboxID: sb.ID, IfName: nextIfName(eps),
		Aliases: r.Aliases, Links: r.Links}
	if !n.OnParent() {
		ep.HostVeth = store.VethName(ep.ID)
	}
	var err error
	if ep.IPv4, err = allocate(snap, n, false, r.IPv4, "ip", q); err != nil {
		return nil, err
	}
	if n.IPv6 {
		if ep.IPv6, err = allocate(snap, n, true, r.IPv6, "ip6", q); err != nil {
			return nil, err
		}
	} else if r.IPv6.IsValid() {
		return nil, invalid("ip6", r.IPv6.String(), "network %s is not IPv6-enabled", n.Name)
	}
	switch {
	case n.Driver == store.DriverIpvlan || passthru(n):
		// The parent's MAC (the kernel gives a passthru child the parent's whatever is
		// asked), which the record does not follow: none of the endpoint's own.
	case r.MAC != nil:
		ep.MAC = r.MAC.String()
	case ep.IPv4.IsValid():
		ep.MAC = macFromIPv4(ep.IPv4).String()
	default:
		ep.MAC = bridgeMAC(ep.ID).String()
	}
	ep.DNSNames = dnsNames(sb, ep.Aliases)
	return ep, nil
}

// putEndpointTx records a planned endpoint (not inserted before: its Seq is given here) with
// its addresses. The plan must still hold: the network is there, the addresses are free
// (the address table's owner check) and sb has no other endpoint on it (a unique index).
func putEndpointTx(tx *store.Tx, ep *store.Endpoint) error {
	if _, err := tx.Network(ep.NetworkID); err != nil {
		return fmt.Errorf("network %s: %w", store.ShortID(ep.NetworkID), err)
	}
	seq, err := tx.NextCounter("endpoint_seq")
	if err != nil {
		return err
	}
	ep.Seq = seq
	for _, a := range endpointAddrs(ep) {
		if err := tx.PutAddress(a); err != nil {
			return err
		}
	}
	return tx.PutEndpoint(ep)
}

// endpointAddrs are the address records of ep's addresses.
func endpointAddrs(ep *store.Endpoint) []*store.Address {
	var out []*store.Address
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if a.IsValid() {
			out = append(out, &store.Address{NetworkID: ep.NetworkID, Addr: a, Owner: ep.ID})
		}
	}
	return out
}

// attach creates the kernel side of an endpoint.
func (m *Manager) attach(sb *store.Sandbox, n *store.Network, ep *store.Endpoint) error {
	mac, _ := net.ParseMAC(ep.MAC)
	var addrs []netip.Prefix
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if !a.IsValid() {
			continue
		}
		if sub, ok := subnetFor(n, a.Is6()); ok {
			addrs = append(addrs, netip.PrefixFrom(a, sub.Subnet.Bits()))
		}
	}
	if n.OnParent() {
		return m.attachSubIf(sb, n, ep, addrs)
	}
	err := m.cfg.Kernel.AddVeth(VethSpec{NetNSPath: sb.NetNSPath, HostName: ep.HostVeth, Bridge: n.Bridge,
		IfName: ep.IfName, MAC: mac, MTU: n.MTU, Addrs: addrs})
	if errors.Is(err, syscall.EXFULL) {
		// The kernel's word for it is a bare "exchange full".
		return fmt.Errorf("network %s is full: its bridge %s already has %d ports, the most a Linux bridge takes: %w",
			n.Name, n.Bridge, maxBridgePorts, store.ErrConflict)
	}
	return err
}

// detach deletes the kernel side of an endpoint of sb: its veth (the host end takes the
// sandbox end along), or its macvlan or ipvlan interface in the netns, if the netns is
// still there (a gone netns took the interface with it).
func (m *Manager) detach(sb *store.Sandbox, ep *store.Endpoint) error {
	if !onParent(ep) {
		return m.cfg.Kernel.DeleteLink(ep.HostVeth)
	}
	if !m.cfg.Kernel.NetNSExists(sb.NetNSPath) {
		return nil
	}
	return m.cfg.Kernel.DeleteLinkIn(sb.NetNSPath, ep.IfName)
}

// maxBridgePorts is how many ports a Linux bridge takes: port numbers are 10 bits
// (BR_MAX_PORTS 1024) and 0 is never used, so enslaving one more fails with EXFULL.
const maxBridgePorts = 1023

// setRoutes points the sandbox's default routes at the gateways of its first non-internal
// network (per family, in join order); internal networks never get a default route.
func (m *Manager) setRoutes(snap *store.Snapshot, sb *store.Sandbox) error {
	return m.setRoutesOf(sb, snap.SandboxEndpoints(sb.ID), snap.Network)
}

// setRoutesOf is setRoutes for the endpoints eps (in join order) of sb, whose networks
// network returns: for a sandbox being created, whose records are not committed yet.
func (m *Manager) setRoutesOf(sb *store.Sandbox, eps []*store.Endpoint, network func(id string) (*store.Network, error)) error {
	if sb.Mode != store.ModeBridge {
		return nil
	}
	var if4, if6 string
	var gw4, gw6 netip.Addr
	for _, ep := range eps {
		n, err := network(ep.NetworkID)
		if err != nil || n.Internal {
			continue
		}
		if s, ok := subnetFor(n, false); ok && !gw4.IsValid() && ep.IPv4.IsValid() {
			if4, gw4 = ep.IfName, s.Gateway
		}
		if s, ok := subnetFor(n, true); ok && !gw6.IsValid() && ep.IPv6.IsValid() {
			if6, gw6 = ep.IfName, s.Gateway
		}
	}
	return m.cfg.Kernel.SetDefaultRoutes(sb.NetNSPath, if4, gw4, if6, gw6)
}

// Connect attaches a sandbox to one more network at runtime.
func (m *Manager) Connect(ctx context.Context, req api.NetworkConnect) error {
	spec, err := ValidateNetworkConnect(req)
	if err != nil {
		return err
	}
	r := spec.Endpoint
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("connect %s to %s: %w", spec.Sandbox, spec.Network, err)
	}
	snap := m.cfg.Store.Snapshot()
	n, err := NetworkByRef(snap, spec.Network)
	if err != nil {
		return err
	}
	sb, err := SandboxByRef(snap, spec.Sandbox)
	if err != nil {
		return err
	}
	if sb.Mode != store.ModeBridge {
		return invalid("container", sb.Name, "sandbox uses network mode %s and cannot be connected to other networks", sb.Mode)
	}
	if _, err := snap.EndpointOf(n.ID, sb.ID); err == nil {
		return fmt.Errorf("sandbox %s is already connected to network %s: %w", sb.Name, n.Name, store.ErrConflict)
	}
	if err := checkEndpointReq(snap, n, sb, r); err != nil {
		return err
	}
	ep, err := planEndpoint(snap, sb, n, snap.SandboxEndpoints(sb.ID), r, m.reap)
	if err != nil {
		return err
	}
	claims, err := m.claimAddrs(ctx, snap, n, ep, r)
	var inv *InvalidError
	if errors.As(err, &inv) {
		return err
	}
	if err != nil {
		return fmt.Errorf("connect %s to %s: %w", sb.Name, n.Name, err)
	}
	connected := false
	defer func() {
		if !connected {
			m.releaseClaims(ctx, claims)
		}
	}()
	var replaced []*store.File
	err = m.cfg.Store.Update(func(tx *store.Tx) error {
		if err := putEndpointTx(tx, ep); err != nil {
			return err
		}
		var err error
		replaced, err = m.recordAhead(tx, sb) // the files' new hashes: no commit of their own
		return err
	})
	if err != nil {
		return fmt.Errorf("connect %s to %s: %w", sb.Name, n.Name, err)
	}
	crashPoint("connect:recorded")
	// undo makes it as if the connect never was: the veth and records go, and the routes,
	// once touched, are those of the other endpoints again.
	routes := false
	undo := func(err error) error {
		uerr := m.dropEndpoint(sb, ep, replaced)
		if routes {
			uerr = errors.Join(uerr, m.setRoutes(m.cfg.Store.Snapshot(), sb))
		}
		return errors.Join(fmt.Errorf("connect %s to %s: %w", sb.Name, n.Name, err), uerr)
	}
	if err := ctx.Err(); err != nil {
		return undo(err)
	}
	if err := m.attach(sb, n, ep); err != nil {
		return undo(err)
	}
	if err := ctx.Err(); err != nil {
		return undo(err)
	}
	crashPoint("connect:veth")
	snap = m.cfg.Store.Snapshot()
	routes = true
	if err := m.setRoutes(snap, sb); err != nil {
		return undo(fmt.Errorf("routes: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return undo(err) // the last chance: the rest is the firewall's and the files'
	}
	crashPoint("connect:routes")
	if err := m.syncFirewall(); err != nil {
		err = undo(err)
		m.syncFirewallOrWarn("failed connect")
		return err
	}
	m.refreshFiles(snap, sb)
	m.syncShims([]*store.Endpoint{ep})
	connected = true
	m.cfg.Log.Info("sandbox connected", "sandbox", sb.Name, "network", n.Name, "ipv4", ep.IPv4, "ipv6", ep.IPv6)
	changes = append(changes, Change{Kind: SandboxConnected, Network: n, Sandbox: sb})
	return nil
}

// dropEndpoint undoes a connect of sb: the endpoint's veth (or interface) and records go,
// and the file records it replaced (recordAhead) come back.
func (m *Manager) dropEndpoint(sb *store.Sandbox, ep *store.Endpoint, files []*store.File) error {
	kerr := m.detach(sb, ep)
	serr := m.cfg.Store.Update(func(tx *store.Tx) error {
		if err := deleteEndpointTx(tx, ep); err != nil {
			return err
		}
		for _, f := range files {
			if err := tx.PutFile(f); err != nil {
				return err
			}
		}
		return nil
	})
	return errors.Join(kerr, serr)
}

// deleteEndpointTx removes an endpoint record and releases its addresses.
func deleteEndpointTx(tx *store.Tx, ep *store.Endpoint) error {
	if err := tx.ReleaseOwner(ep.ID); err != nil {
		return err
	}
	return tx.DeleteEndpoint(ep)
}

// Disconnect detaches a sandbox from a network, releasing its addresses.
func (m *Manager) Disconnect(ctx context.Context, req api.NetworkDisconnect) error {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disconnect %s from %s: %w", req.Sandbox, req.Network, err)
	}
	snap := m.cfg.Store.Snapshot()
	n, err := NetworkByRef(snap, req.Network)
	if err != nil {
		return err
	}
	sb, err := SandboxByRef(snap, req.Sandbox)
	if err != nil {
		return err
	}
	ep, err := snap.EndpointOf(n.ID, sb.ID)
	if err != nil {
		return fmt.Errorf("sandbox %s is not connected to network %s: %w", sb.Name, n.Name, store.ErrNotFound)
	}
	if err := m.detach(sb, ep); err != nil && !req.Force {
		return fmt.Errorf("disconnect %s from %s: %w", sb.Name, n.Name, err)
	}
	crashPoint("disconnect:veth")
	err = m.cfg.Store.Update(func(tx *store.Tx) error {
		if err := deleteEndpointTx(tx, ep); err != nil {
			return err
		}
		_, err := m.recordAhead(tx, sb)
		return err
	})
	if err != nil {
		return fmt.Errorf("disconnect %s from %s: %w", sb.Name, n.Name, err)
	}
	crashPoint("disconnect:recorded")
	m.releaseClaims(ctx, claimsOf(snap, []*store.Endpoint{ep}))
	snap = m.cfg.Store.Snapshot()
	if err := m.setRoutes(snap, sb); err != nil {
		m.cfg.Log.Warn("reset default routes", "sandbox", sb.Name, "err", err)
	}
	m.refreshFiles(snap, sb)
	m.syncShims([]*store.Endpoint{ep})
	m.syncFirewallOrWarn("disconnect")
	m.cfg.Log.Info("sandbox disconnected", "sandbox", sb.Name, "network", n.Name)
	changes = append(changes, Change{Kind: SandboxDisconnected, Network: n, Sandbox: sb})
	return nil
}

// passthru reports whether n is a macvlan network in passthru mode.
func passthru(n *store.Network) bool { return n.Driver == store.DriverMacvlan && n.Mode == "passthru" }
