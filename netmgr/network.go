package netmgr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
	switch {
	case n.Global():
		n, err = m.createOverlayLocked(ctx, n)
	case n.OnParent():
		err = m.createSubIfNetworkLocked(n)
	default:
		err = m.createBridgeLocked(ctx, n)
	}
	if err != nil {
		return nil, fmt.Errorf("create network %q: %w", req.Name, err)
	}
	crashPoint("network-create:bridge")
	if n.OnParent() {
		m.cfg.Log.Info("network created", "network", n.Name, "driver", n.Driver, "parent", n.Parent.Name, "mode", n.Mode, "subnets", n.Subnets)
	} else {
		m.cfg.Log.Info("network created", "network", n.Name, "driver", n.Driver, "bridge", n.Bridge, "subnets", n.Subnets)
	}
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
	snap := m.cfg.Store.Snapshot()
	if spec.ConfigFrom != "" {
		if spec, err = configFromSpec(snap, req); err != nil {
			return nil, err
		}
	}
	if spec.Overlay && m.cfg.Cluster == nil {
		return nil, invalid("driver", store.DriverOverlay, "needs a cluster store (berth daemon --cluster-store etcd://...)")
	}
	// The snapshot holds the global networks mirrored here too: a local network never
	// takes a global one's name, and a global one never a local one's on this host (the
	// cluster store checks the other hosts' global ones).
	if _, err := snap.NetworkByName(spec.Name); err == nil {
		return nil, fmt.Errorf("network with name %s already exists: %w", spec.Name, store.ErrConflict)
	}
	n := &store.Network{
		ID: newID(), Name: spec.Name, Driver: store.DriverBridge, Internal: spec.Internal, IPv6: spec.IPv6,
		NoIPv4: !spec.IPv4, Attachable: spec.Attachable, ConfigOnly: spec.ConfigOnly, ConfigFrom: spec.ConfigFrom,
		ICC: spec.ICC, MTU: spec.MTU, Bridge: spec.Bridge, Options: spec.Options, Labels: spec.Labels,
		Created: time.Now().UTC(),
	}
	switch {
	case spec.Overlay:
		n.Driver, n.Scope = store.DriverOverlay, store.ScopeGlobal
	case spec.ConfigOnly:
		// Docker's driver of a configuration network, so nothing takes it for a bridge.
		n.Driver, n.Bridge = store.DriverNull, ""
	case spec.Sub != nil:
		if err := m.applySubIf(snap, n, spec.Sub); err != nil {
			return nil, err
		}
	}
	if n.Bridged() {
		if err := m.checkBridgeName(snap, n); err != nil {
			return nil, err
		}
	}
	subnets, err := m.buildSubnets(snap, n, spec)
	if err != nil {
		return nil, err
	}
	n.Subnets = subnets
	if err := reserveShim(n); err != nil {
		return nil, err
	}
	return n, nil
}

// checkBridgeName names n's bridge after its ID unless an option named it, and checks a
// given name is free.
func (m *Manager) checkBridgeName(snap *store.Snapshot, n *store.Network) error {
	if n.Bridge == "" {
		n.Bridge = bridgePrefix + n.ID[:12]
		return nil
	}
	if _, err := snap.NetworkByBridge(n.Bridge); err == nil {
		return invalid("opt", OptBridgeName+"="+n.Bridge, "bridge already used by another network")
	}
	if names, err := m.cfg.Kernel.LinkNames(); err == nil && slices.Contains(names, n.Bridge) {
		return invalid("opt", OptBridgeName+"="+n.Bridge, "a device with this name exists and is not berth's")
	}
	return nil
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
	if n.ConfigOnly {
		for _, o := range snap.Networks() {
			if o.ConfigFrom == n.Name {
				return nil, fmt.Errorf("configuration network %q is in use: %w", n.Name, store.ErrConflict)
			}
		}
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

// deleteDevices deletes a network's bridge and, for an overlay network, its VXLAN device;
// for a macvlan or ipvlan network its shim and the parent berth made.
func (m *Manager) deleteDevices(n *store.Network) error {
	if n.OnParent() {
		return m.deleteSubIfDevices(n)
	}
	if !n.Bridged() {
		return nil // a configuration network has none
	}
	if n.Global() {
		if err := m.cfg.Kernel.DeleteVxlan(vxlanDev(n)); err != nil {
			return err
		}
	}
	return m.cfg.Kernel.DeleteLink(n.Bridge)
}

// PruneNetworks removes every user-defined local network without endpoints but the
// configuration networks, of those match accepts (all when match is nil: match is the
// prune filters, until and label, asked under the lock in the same pass that checks the
// endpoints, so what it accepted is what is removed). Once ctx is done it removes no more,
// and returns those it removed with ctx's error. Global networks are left out (not checked
// against Docker): removing one removes it from every host of the cluster, which a prune
// run on one host, seeing only its own sandboxes, should not do.
func (m *Manager) PruneNetworks(ctx context.Context, match func(*store.Network) bool) ([]string, error) {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prune networks: %w", err)
	}
	snap := m.cfg.Store.Snapshot()
	var deleted []string
	for _, n := range snap.Networks() {
		// Configuration networks stay, as in Docker (moby daemon/prune.go).
		if n.Predefined || n.Global() || n.ConfigOnly || len(snap.NetworkEndpoints(n.ID)) > 0 ||
			(match != nil && !match(n)) {
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
