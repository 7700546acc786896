package netmgr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"berth/api"
	"berth/store"
)

// Bridge driver options berth understands (Docker's names).
const (
	OptBridgeName  = "com.docker.network.bridge.name"
	OptMTU         = "com.docker.network.driver.mtu"
	OptICC         = "com.docker.network.bridge.enable_icc"
	OptMasquerade  = "com.docker.network.bridge.enable_ip_masquerade"
	OptHostBinding = "com.docker.network.bridge.host_binding_ipv4"
)

// Predefined networks, as Docker has them.
const (
	DefaultNetwork = "bridge"
	DefaultBridge  = "berth0"
	NoneNetwork    = "none"
	HostNetwork    = "host"
	bridgePrefix   = "br-"
)

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// CreateNetwork validates req, records the network and creates its bridge. An overlay
// network is created in the cluster store first (the authority on global names, subnets
// and VNIs), then here, and removed from the cluster store again if this host fails to
// make it (overlay.go).
func (m *Manager) CreateNetwork(ctx context.Context, req api.NetworkCreate) (*store.Network, error) {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create network %q: %w", req.Name, err)
	}
	n, err := m.buildNetwork(req)
	if err != nil {
		return nil, err
	}
	if n.Global() {
		n, err = m.createOverlayLocked(ctx, n)
	} else {
		err = m.createBridgeLocked(ctx, n)
	}
	if err != nil {
		return nil, fmt.Errorf("create network %q: %w", req.Name, err)
	}
	crashPoint("network-create:bridge")
	m.cfg.Log.Info("network created", "network", n.Name, "driver", n.Driver, "bridge", n.Bridge, "subnets", n.Subnets)
	changes = append(changes, Change{Kind: NetworkCreated, Network: n})
	return n, nil
}

// createBridgeLocked records n and makes its bridge and rules, or undoes what it made.
func (m *Manager) createBridgeLocked(ctx context.Context, n *store.Network) error {
	if err := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutNetwork(n) }); err != nil {
		return err
	}
	crashPoint("network-create:recorded")
	err := m.ensureBridge(n)
	if err == nil {
		err = ctx.Err() // the last chance to undo: the rest is the firewall's
	}
	if err == nil {
		err = m.syncFirewall()
	}
	if err != nil {
		// Undo: the record must not outlive a failed create.
		_ = m.cfg.Kernel.DeleteLink(n.Bridge)
		if uerr := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.DeleteNetwork(n) }); uerr != nil {
			err = errors.Join(err, uerr)
		}
		m.syncFirewallOrWarn("failed network create")
		return err
	}
	return nil
}

// ensureBridge makes the bridge of a bridge or overlay network; nothing for none and host.
func (m *Manager) ensureBridge(n *store.Network) error {
	if !n.Bridged() {
		return nil
	}
	var addrs []netip.Prefix
	for _, s := range n.Subnets {
		addrs = append(addrs, netip.PrefixFrom(s.Gateway, s.Subnet.Bits()))
	}
	return m.cfg.Kernel.EnsureBridge(BridgeSpec{Name: n.Bridge, MAC: bridgeMAC(n.ID), MTU: n.MTU, Addrs: addrs})
}

// buildNetwork turns a request into a record, or the first invalid field.
func (m *Manager) buildNetwork(req api.NetworkCreate) (*store.Network, error) {
	spec, err := ValidateNetworkCreate(req)
	if err != nil {
		return nil, err
	}
	if spec.Overlay && m.cfg.Cluster == nil {
		return nil, invalid("driver", store.DriverOverlay, "needs a cluster store (berth daemon --cluster-store etcd://...)")
	}
	snap := m.cfg.Store.Snapshot()
	// The snapshot holds the global networks mirrored here too: a local network never
	// takes a global one's name, and a global one never a local one's on this host (the
	// cluster store checks the other hosts' global ones).
	if _, err := snap.NetworkByName(spec.Name); err == nil {
		return nil, fmt.Errorf("network with name %s already exists: %w", spec.Name, store.ErrConflict)
	}
	n := &store.Network{
		ID: newID(), Name: spec.Name, Driver: store.DriverBridge, Internal: spec.Internal, IPv6: spec.IPv6,
		ICC: spec.ICC, MTU: spec.MTU, Bridge: spec.Bridge, Options: spec.Options, Labels: spec.Labels,
		Created: time.Now().UTC(),
	}
	if spec.Overlay {
		n.Driver, n.Scope = store.DriverOverlay, store.ScopeGlobal
	}
	if n.Bridge == "" {
		n.Bridge = bridgePrefix + n.ID[:12]
	} else {
		if _, err := snap.NetworkByBridge(n.Bridge); err == nil {
			return nil, invalid("opt", OptBridgeName+"="+n.Bridge, "bridge already used by another network")
		}
		if names, err := m.cfg.Kernel.LinkNames(); err == nil && contains(names, n.Bridge) {
			return nil, invalid("opt", OptBridgeName+"="+n.Bridge, "a device with this name exists and is not berth's")
		}
	}
	subnets, err := m.buildSubnets(snap, n, spec)
	if err != nil {
		return nil, err
	}
	n.Subnets = subnets
	return n, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// buildSubnets checks the subnets asked for against the other networks', picks the others
// and places the gateways and the IP range.
func (m *Manager) buildSubnets(snap *store.Snapshot, n *store.Network, spec NetworkSpec) ([]store.Subnet, error) {
	used := usedPrefixes(snap)
	var subs []store.Subnet
	for _, s := range spec.Subnets {
		if overlaps(s.Value, used) {
			return nil, invalid("subnet", s.Text, "overlaps the subnet of network %s", overlapHolder(snap, s.Value))
		}
		subs = append(subs, store.Subnet{Subnet: s.Value})
	}
	if !hasFamily(subs, false) {
		routes, err := m.cfg.Kernel.RouteDsts()
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		pick := m.pickSubnet
		if n.Global() {
			pick = pickOverlaySubnet
		}
		p, err := pick(used, routes)
		if err != nil {
			return nil, err
		}
		subs = append([]store.Subnet{{Subnet: p}}, subs...)
	}
	if spec.IPv6 && !hasFamily(subs, true) {
		p, err := pickSubnet6(n.ID, used)
		if err != nil {
			return nil, err
		}
		subs = append(subs, store.Subnet{Subnet: p})
	}
	if err := setGateways(subs, spec.Gateways); err != nil {
		return nil, err
	}
	if err := setIPRange(subs, spec.IPRange); err != nil {
		return nil, err
	}
	return subs, nil
}

func overlapHolder(snap *store.Snapshot, p netip.Prefix) string {
	for _, n := range snap.Networks() {
		for _, s := range n.Subnets {
			if s.Subnet.Overlaps(p) {
				return n.Name
			}
		}
	}
	return "?"
}

func hasFamily(subs []store.Subnet, v6 bool) bool {
	for _, s := range subs {
		if s.Subnet.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

// setGateways places each --gateway in the subnet that contains it; the others get the
// first address of their subnet, as Docker does.
func setGateways(subs []store.Subnet, gws []Given[netip.Addr]) error {
	for _, g := range gws {
		a := g.Value
		placed := false
		for i := range subs {
			if subs[i].Subnet.Contains(a) {
				if subs[i].Gateway.IsValid() {
					return invalid("gateway", g.Text, "subnet %s has a gateway already", subs[i].Subnet)
				}
				if a == subs[i].Subnet.Addr() || (a.Is4() && a == lastAddr(subs[i].Subnet)) {
					return invalid("gateway", g.Text, "network or broadcast address of %s", subs[i].Subnet)
				}
				subs[i].Gateway = a
				placed = true
			}
		}
		if !placed {
			return invalid("gateway", g.Text, "not in any subnet of the network")
		}
	}
	for i := range subs {
		if !subs[i].Gateway.IsValid() {
			subs[i].Gateway = subs[i].Subnet.Addr().Next()
		}
	}
	return nil
}

func setIPRange(subs []store.Subnet, r Given[netip.Prefix]) error {
	if !r.Value.IsValid() {
		return nil
	}
	p := r.Value
	for i := range subs {
		s := &subs[i]
		if s.Subnet.Addr().Is6() != p.Addr().Is6() {
			continue
		}
		if !s.Subnet.Contains(p.Addr()) || p.Bits() < s.Subnet.Bits() {
			return invalid("ip-range", r.Text, "not inside subnet %s", s.Subnet)
		}
		s.IPRange = p
		return nil
	}
	return invalid("ip-range", r.Text, "no subnet of this address family")
}

// RemoveNetwork deletes a network that has no endpoints. A global network must have none
// on this host, its own or mirrored ones of other hosts; the cluster store, which knows of
// every host's, decides, and the network goes here only once it is gone there.
func (m *Manager) RemoveNetwork(ctx context.Context, req api.NetworkRemove) error {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove network %s: %w", req.Network, err)
	}
	n, err := m.removeNetworkLocked(ctx, req.Network)
	if err != nil {
		return err
	}
	changes = append(changes, Change{Kind: NetworkRemoved, Network: n})
	return nil
}

// removeNetworkLocked removes the network ref names and returns its record.
func (m *Manager) removeNetworkLocked(ctx context.Context, ref string) (*store.Network, error) {
	snap := m.cfg.Store.Snapshot()
	n, err := NetworkByRef(snap, ref)
	if err != nil {
		return nil, err
	}
	if n.Predefined {
		return nil, fmt.Errorf("%s is a pre-defined network and cannot be removed: %w", n.Name, store.ErrConflict)
	}
	if eps := snap.NetworkEndpoints(n.ID); len(eps) > 0 {
		var names []string
		for _, ep := range eps {
			if ep.Remote() {
				names = append(names, ep.SandboxName+"@"+ep.Host)
			} else if sb, err := snap.Sandbox(ep.SandboxID); err == nil {
				names = append(names, sb.Name)
			}
		}
		return nil, fmt.Errorf("network %s has active endpoints (%v): %w", n.Name, names, store.ErrConflict)
	}
	if n.Global() {
		if err := m.removeFromCluster(ctx, n); err != nil {
			return nil, fmt.Errorf("remove network %s: %w", n.Name, err)
		}
	}
	// Kernel first, record second: a crash in between leaves a record whose bridge the
	// restore pass recreates, never a bridge nobody knows about.
	if err := m.deleteDevices(n); err != nil {
		return nil, fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	crashPoint("network-rm:bridge")
	if err := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.DeleteNetwork(n) }); err != nil {
		return nil, fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	m.syncFirewallOrWarn("network removal")
	m.cfg.Log.Info("network removed", "network", n.Name)
	return n, nil
}

// deleteDevices deletes a network's bridge and, for an overlay network, its VXLAN device.
func (m *Manager) deleteDevices(n *store.Network) error {
	if n.Global() {
		if err := m.cfg.Kernel.DeleteVxlan(vxlanDev(n)); err != nil {
			return err
		}
	}
	return m.cfg.Kernel.DeleteLink(n.Bridge)
}

// PruneNetworks removes every user-defined local network without endpoints. Once ctx is
// done it removes no more, and returns those it removed with ctx's error. Global networks
// are left out (not checked against Docker): removing one removes it from every host of
// the cluster, which a prune run on one host, seeing only its own sandboxes, should not do.
func (m *Manager) PruneNetworks(ctx context.Context) ([]string, error) {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prune networks: %w", err)
	}
	snap := m.cfg.Store.Snapshot()
	var deleted []string
	for _, n := range snap.Networks() {
		if n.Predefined || n.Global() || len(snap.NetworkEndpoints(n.ID)) > 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return deleted, fmt.Errorf("prune networks: %w", err)
		}
		if _, err := m.removeNetworkLocked(ctx, n.ID); err != nil {
			return deleted, err
		}
		deleted = append(deleted, n.Name)
		changes = append(changes, Change{Kind: NetworkRemoved, Network: n})
	}
	return deleted, nil
}
