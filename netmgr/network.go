package netmgr

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
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
	if names, err := m.cfg.Kernel.LinkNames(); err == nil && contains(names, n.Bridge) {
		return invalid("opt", OptBridgeName+"="+n.Bridge, "a device with this name exists and is not berth's")
	}
	return nil
}

// configFromSpec is the spec of req (a --config-from network, which sets none of these
// itself) with the subnets, gateways, ranges, aux addresses, families, options and labels
// of its configuration network, as Docker's applyConfigurationTo copies them.
func configFromSpec(snap *store.Snapshot, req api.NetworkCreate) (NetworkSpec, error) {
	cfg, err := snap.NetworkByName(req.ConfigFrom)
	if err != nil || !cfg.ConfigOnly {
		return NetworkSpec{}, fmt.Errorf("configuration network %q does not exist: %w", req.ConfigFrom, store.ErrNotFound)
	}
	ipv4 := !cfg.NoIPv4
	r := api.NetworkCreate{Name: req.Name, Driver: req.Driver, Internal: req.Internal, Attachable: req.Attachable,
		IPv4: &ipv4, IPv6: cfg.IPv6, Options: cfg.Options, Labels: cfg.Labels, AuxAddresses: map[string]string{}}
	for _, s := range cfg.Subnets {
		r.Subnets = append(r.Subnets, s.Subnet.String())
		if s.Gateway.IsValid() {
			r.Gateways = append(r.Gateways, s.Gateway.String())
		}
		if s.IPRange.IsValid() {
			r.IPRanges = append(r.IPRanges, s.IPRange.String())
		}
	}
	for name, a := range cfg.Aux {
		r.AuxAddresses[name] = a.String()
	}
	spec, err := ValidateNetworkCreate(r)
	spec.ConfigFrom = cfg.Name
	return spec, err
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
// (one per enabled family) and places the gateways, IP ranges and aux addresses. A
// configuration network keeps what was given: it takes no addresses until a network is
// created from it, as in Docker.
func (m *Manager) buildSubnets(snap *store.Snapshot, n *store.Network, spec NetworkSpec) ([]store.Subnet, error) {
	used := usedPrefixes(snap)
	var subs []store.Subnet
	for _, s := range spec.Subnets {
		if !n.ConfigOnly && overlaps(s.Value, used) {
			return nil, invalid("subnet", s.Text, "overlaps the subnet of network %s", overlapHolder(snap, s.Value))
		}
		subs = append(subs, store.Subnet{Subnet: s.Value})
	}
	if spec.IPv4 && !n.ConfigOnly && !hasFamily(subs, false) {
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
		subs = append(subs, store.Subnet{Subnet: p})
	}
	if spec.IPv6 && !n.ConfigOnly && !hasFamily(subs, true) {
		p, err := pickSubnet6(hostID(snap), used)
		if err != nil {
			return nil, err
		}
		subs = append(subs, store.Subnet{Subnet: p})
	}
	// IPv4 first, as the record and inspect list them.
	slices.SortStableFunc(subs, func(a, b store.Subnet) int {
		return cmp.Compare(a.Subnet.Addr().BitLen(), b.Subnet.Addr().BitLen())
	})
	if err := setGateways(subs, spec.Gateways, !n.ConfigOnly); err != nil {
		return nil, err
	}
	if err := setIPRanges(subs, spec.IPRanges); err != nil {
		return nil, err
	}
	var err error
	if n.Aux, err = setAux(subs, spec.Aux, !n.ConfigOnly); err != nil {
		return nil, err
	}
	return subs, nil
}

func overlapHolder(snap *store.Snapshot, p netip.Prefix) string {
	for _, n := range snap.Networks() {
		if n.ConfigOnly {
			continue
		}
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

// setGateways places each --gateway in the subnet that contains it; if dflt, the others
// get the first address of their subnet, as Docker does.
func setGateways(subs []store.Subnet, gws []Given[netip.Addr], dflt bool) error {
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
		if dflt && !subs[i].Gateway.IsValid() {
			subs[i].Gateway = subs[i].Subnet.Addr().Next()
		}
	}
	return nil
}

// setIPRanges gives each --ip-range to the subnet containing its first address, at most
// one per subnet: docker network create's rule and words (docker/cli
// cli/command/network/create.go, createIPAMConfig), and dockerd 28's check that the range
// is no bigger than its subnet (moby daemon/network.go, validateIPRange).
func setIPRanges(subs []store.Subnet, ranges []Given[netip.Prefix]) error {
	for _, r := range ranges {
		p := r.Value
		i := slices.IndexFunc(subs, func(s store.Subnet) bool { return s.Subnet.Contains(p.Addr()) })
		if i < 0 {
			return invalid("ip-range", r.Text, "no matching subnet for range %s", r.Text)
		}
		s := &subs[i]
		if s.IPRange.IsValid() {
			return invalid("ip-range", r.Text, "cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r.Text, s.IPRange, s.Subnet)
		}
		if p.Bits() < s.Subnet.Bits() {
			return invalid("ip-range", r.Text, "CIDR block is bigger than its parent subnet %s", s.Subnet)
		}
		s.IPRange = p
	}
	return nil
}

// setAux checks that each --aux-address is in a subnet (docker network create's rule and
// words) and, if alloc, not an address the subnet reserves already: dockerd refuses the
// network address, the gateway, the IPv4 broadcast and a second name for one address with
// "failed to allocate secondary ip address (NAME:IP): Address already in use". A
// configuration network allocates nothing (!alloc): dockerd takes those, and refuses them
// when a network is made --config-from it. It returns the network's Aux, or nil.
func setAux(subs []store.Subnet, aux []AuxAddress, alloc bool) (map[string]netip.Addr, error) {
	var out map[string]netip.Addr
	for _, x := range aux {
		a := x.Addr.Value
		i := slices.IndexFunc(subs, func(s store.Subnet) bool { return s.Subnet.Contains(a) })
		if i < 0 {
			return nil, invalid("aux-address", x.Addr.Text, "no matching subnet for aux-address %s", a)
		}
		if alloc && (reserved(subs[i], a) || slices.Contains(slices.Collect(maps.Values(out)), a)) {
			return nil, invalid("aux-address", x.Addr.Text, "failed to allocate secondary ip address (%s:%s): Address already in use", x.Name, a)
		}
		if out == nil {
			out = map[string]netip.Addr{}
		}
		out[x.Name] = a
	}
	return out, nil
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

// deleteDevices deletes a network's bridge and, for an overlay network, its VXLAN device.
func (m *Manager) deleteDevices(n *store.Network) error {
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
// configuration networks. Once ctx is done it removes no more, and returns those it
// removed with ctx's error. Global networks are left out (not checked against Docker): removing one removes it from every host of
// the cluster, which a prune run on one host, seeing only its own sandboxes, should not do.
func (m *Manager) PruneNetworks(ctx context.Context) ([]string, error) {
	return m.PruneNetworksMatching(ctx, nil)
}

// PruneNetworksMatching is PruneNetworks of only the networks match accepts (all when match
// is nil): the prune filters (until, label). It is asked under the lock, in the same pass
// that checks the endpoints, so what it accepted is what is removed.
func (m *Manager) PruneNetworksMatching(ctx context.Context, match func(*store.Network) bool) ([]string, error) {
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
