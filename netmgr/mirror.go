package netmgr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"berth/store"
)

// ApplyRemote brings this host's mirror of the cluster store up to date with u: the global
// networks (record, bridge, VXLAN device) and the other hosts' endpoints on them (record,
// addresses, the VXLAN device's FDB and neighbour entries). It is the mirror's only way in
// (package cluster calls it, one update at a time, in revision order) and runs under m.mu
// like every change. The records go in one store transaction per update.
//
// A global network removed from the cluster while this host still has sandboxes on it
// (possible only if this host's endpoints had lapsed with its lease) is kept here, with a
// warning, until they leave it: removing it would pull their interfaces from under them.
// One whose name a local network here already has is skipped, with a warning. A remote
// endpoint whose address or MAC an endpoint here holds is skipped, with a warning. Like
// every change, an update refuses to start once ctx is done.
func (m *Manager) ApplyRemote(ctx context.Context, u RemoteUpdate) error {
	var changes []Change
	m.mu.Lock()
	defer m.unlock(&changes)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apply cluster update (revision %d): %w", u.Rev, err)
	}
	if m.cfg.Cluster == nil {
		return errors.New("apply cluster update: no cluster store configured")
	}
	snap := m.cfg.Store.Snapshot()
	plan := m.planRemote(snap, u)
	// Kernel first for new networks: a record is only committed for a network whose
	// devices exist, so the restore pass and the sweep agree with the kernel.
	for i, n := range plan.newNets {
		mtu, err := m.ensureOverlay(n)
		if err != nil {
			m.cfg.Log.Error("global network from the cluster store", "network", n.Name, "err", err)
			_ = m.deleteDevices(n)
			plan.newNets[i] = nil
			continue
		}
		n.MTU = mtu
	}
	known := map[string]bool{}
	for _, n := range snap.Networks() {
		known[n.ID] = true
	}
	for _, n := range plan.newNets {
		if n != nil {
			known[n.ID] = true
		}
	}
	var added []*store.Endpoint
	err := m.cfg.Store.Update(func(tx *store.Tx) error {
		added = added[:0]
		// Removals first: a network created in the same update may have a removed one's name.
		for _, ep := range plan.removedEps {
			if err := tx.ReleaseOwner(ep.ID); err != nil {
				return err
			}
			if err := tx.DeleteEndpoint(ep); err != nil {
				return err
			}
		}
		for _, n := range plan.removedNets {
			if err := tx.DeleteNetwork(n); err != nil {
				return err
			}
		}
		for _, n := range append(plan.newNets, plan.changedNets...) {
			if n != nil {
				if err := tx.PutNetwork(n); err != nil {
					return fmt.Errorf("network %s: %w", n.Name, err)
				}
			}
		}
		for _, ep := range plan.putEps {
			if !known[ep.NetworkID] || plan.gone[ep.NetworkID] {
				continue
			}
			if !m.remoteAddrsFree(tx, ep) {
				continue
			}
			if old, err := tx.Endpoint(ep.ID); err == nil {
				if !old.Remote() {
					continue // never replace this host's own
				}
				if err := tx.ReleaseOwner(ep.ID); err != nil {
					return err
				}
			}
			for _, a := range endpointAddrs(ep) {
				if err := tx.PutAddress(a); err != nil {
					return err
				}
			}
			if err := tx.PutEndpoint(ep); err != nil {
				return fmt.Errorf("endpoint %s: %w", store.ShortID(ep.ID), err)
			}
			added = append(added, ep)
		}
		return nil
	})
	if err != nil {
		for _, n := range plan.newNets {
			if n != nil {
				_ = m.deleteDevices(n)
			}
		}
		return fmt.Errorf("apply cluster update (revision %d): %w", u.Rev, err)
	}
	m.programPeers(snap, u.Full, plan, added)
	for _, n := range plan.removedNets {
		if err := m.deleteDevices(n); err != nil {
			m.cfg.Log.Warn("delete devices of a removed global network", "network", n.Name, "err", err)
		}
	}
	if len(plan.newNets) > 0 || len(plan.removedNets) > 0 {
		m.syncFirewallOrWarn("cluster update")
	}
	for _, n := range plan.newNets {
		if n != nil {
			m.cfg.Log.Info("global network mirrored", "network", n.Name, "vni", n.VNI)
			changes = append(changes, Change{Kind: NetworkCreated, Network: n})
		}
	}
	for _, n := range plan.removedNets {
		m.cfg.Log.Info("global network removed", "network", n.Name)
		changes = append(changes, Change{Kind: NetworkRemoved, Network: n})
	}
	return nil
}

// remotePlan is what one RemoteUpdate changes here.
type remotePlan struct {
	newNets     []*store.Network // not here yet: devices to make
	changedNets []*store.Network
	removedNets []*store.Network // with their remote endpoints (in removedEps)
	gone        map[string]bool  // IDs of removedNets
	putEps      []*store.Endpoint
	removedEps  []*store.Endpoint
}

// planRemote sorts u against snap.
func (m *Manager) planRemote(snap *store.Snapshot, u RemoteUpdate) remotePlan {
	p := remotePlan{gone: map[string]bool{}}
	self := m.cfg.Cluster.HostID()
	listed := map[string]bool{}
	for _, in := range u.Networks {
		listed[in.ID] = true
	}
	// Removals first: the puts check names against the networks that stay.
	removed := append([]string(nil), u.RemovedNetworks...)
	if u.Full {
		for _, n := range snap.Networks() {
			if n.Global() && !listed[n.ID] {
				removed = append(removed, n.ID)
			}
		}
	}
	for _, id := range removed {
		n, err := snap.Network(id)
		if err != nil || !n.Global() || p.gone[id] {
			continue
		}
		local := 0
		for _, ep := range snap.NetworkEndpoints(id) {
			if !ep.Remote() {
				local++
			}
		}
		if local > 0 {
			m.cfg.Log.Warn("global network removed from the cluster store but this host has sandboxes on it: kept until they leave", "network", n.Name, "endpoints", local)
			continue
		}
		p.gone[id] = true
		p.removedNets = append(p.removedNets, n)
		p.removedEps = append(p.removedEps, snap.NetworkEndpoints(id)...)
	}
	for _, in := range u.Networks {
		if !in.Global() || in.VNI == 0 || len(in.ID) < 12 {
			m.cfg.Log.Warn("cluster store: not a global network record, skipped", "network", in.Name)
			continue
		}
		n := in.Copy()
		n.Bridge = bridgePrefix + n.ID[:12]
		n.Predefined = false
		if old, err := snap.Network(n.ID); err == nil {
			n.MTU = old.MTU // this host's, from its own underlay
			if !sameRecord(old, n) {
				p.changedNets = append(p.changedNets, n)
			}
			continue
		}
		if o, err := snap.NetworkByName(n.Name); err == nil && !p.gone[o.ID] {
			why := "a local network here has its name"
			if o.Global() {
				why = "another global network here has its name (its removal is still to come)"
			}
			m.cfg.Log.Warn("global network skipped: "+why, "network", n.Name, "holder", store.ShortID(o.ID))
			continue
		}
		p.newNets = append(p.newNets, n)
	}
	put := map[string]bool{}
	localMACs := map[string]map[string]bool{} // network ID -> MACs of this host's endpoints on it
	for _, ep := range u.Endpoints {
		if ep.Host == "" || ep.Host == self || !ep.HostAddr.IsValid() {
			continue
		}
		macs, ok := localMACs[ep.NetworkID]
		if !ok {
			macs = map[string]bool{}
			for _, o := range snap.NetworkEndpoints(ep.NetworkID) {
				if !o.Remote() {
					macs[strings.ToLower(o.MAC)] = true
				}
			}
			localMACs[ep.NetworkID] = macs
		}
		if macs[strings.ToLower(ep.MAC)] {
			// One bridge cannot reach one MAC through a veth and the VXLAN device both.
			m.cfg.Log.Warn("remote endpoint skipped: an endpoint here has its MAC", "endpoint", store.ShortID(ep.ID),
				"host", ep.Host, "mac", ep.MAC)
			continue
		}
		c := ep.Copy()
		c.HostVeth, c.Links = "", nil
		put[c.ID] = true
		if old, err := snap.Endpoint(c.ID); err == nil && sameEndpoint(old, c) {
			continue
		}
		p.putEps = append(p.putEps, c)
	}
	drop := func(ep *store.Endpoint) {
		if ep.Remote() && !p.gone[ep.NetworkID] {
			p.removedEps = append(p.removedEps, ep)
		}
	}
	for _, id := range u.RemovedEndpoints {
		if ep, err := snap.Endpoint(id); err == nil && !put[id] {
			drop(ep)
		}
	}
	if u.Full {
		for _, n := range snap.Networks() {
			for _, ep := range snap.NetworkEndpoints(n.ID) {
				if ep.Remote() && !put[ep.ID] {
					drop(ep)
				}
			}
		}
	}
	return p
}

// remoteAddrsFree reports whether ep's addresses are free or already its own here; a
// collision with another endpoint (only a stale record could make one) is skipped with a
// warning: never two holders of one address.
func (m *Manager) remoteAddrsFree(tx *store.Tx, ep *store.Endpoint) bool {
	for _, a := range endpointAddrs(ep) {
		if old, err := tx.Address(a.NetworkID, a.Addr); err == nil && old.Owner != ep.ID {
			m.cfg.Log.Warn("remote endpoint skipped: its address is held here", "endpoint", store.ShortID(ep.ID),
				"host", ep.Host, "addr", a.Addr, "holder", store.ShortID(old.Owner))
			return false
		}
	}
	return true
}

// sameEndpoint reports whether a remote endpoint's record is unchanged (Seq aside).
func sameEndpoint(a, b *store.Endpoint) bool {
	return a.Host == b.Host && a.HostAddr == b.HostAddr && a.MAC == b.MAC && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6 &&
		a.NetworkID == b.NetworkID && a.SandboxName == b.SandboxName &&
		slices.Equal(a.DNSNames, b.DNSNames) && slices.Equal(a.Aliases, b.Aliases)
}

// programPeers makes the VXLAN devices' entries follow the records: a full update syncs
// every global network's device with its remote endpoints; an incremental one removes the
// entries of the endpoints removed (before is the snapshot they were in) and adds those
// put. A failure is logged: the next full update (a resync, a restart) repairs it.
func (m *Manager) programPeers(before *store.Snapshot, full bool, p remotePlan, added []*store.Endpoint) {
	snap := m.cfg.Store.Snapshot()
	if full {
		for _, n := range snap.Networks() {
			if !n.Global() {
				continue
			}
			if err := m.cfg.Kernel.SyncVxlanPeers(vxlanDev(n), remotePeers(snap, n.ID)); err != nil {
				m.cfg.Log.Warn("sync vxlan peers", "network", n.Name, "err", err)
			}
		}
		return
	}
	for _, ep := range p.removedEps {
		if p.gone[ep.NetworkID] {
			continue // the device goes
		}
		n, err := snap.Network(ep.NetworkID)
		peer, perr := peerOf(ep)
		if err != nil || perr != nil {
			continue
		}
		if err := m.cfg.Kernel.DeleteVxlanPeer(vxlanDev(n), peer); err != nil {
			m.cfg.Log.Warn("delete vxlan peer", "network", n.Name, "endpoint", store.ShortID(ep.ID), "err", err)
		}
	}
	for _, ep := range added {
		n, err := snap.Network(ep.NetworkID)
		if err != nil {
			continue
		}
		// The kernel keys neighbour entries by address: an old address must go even when
		// the MAC stays (--mac-address), the FDB entry when the MAC changes.
		if old, err := before.Endpoint(ep.ID); err == nil && (old.MAC != ep.MAC || old.IPv4 != ep.IPv4 || old.IPv6 != ep.IPv6) {
			if op, err := peerOf(old); err == nil {
				_ = m.cfg.Kernel.DeleteVxlanPeer(vxlanDev(n), op)
			}
		}
		peer, err := peerOf(ep)
		if err != nil {
			m.cfg.Log.Warn("remote endpoint without a usable peer entry", "endpoint", store.ShortID(ep.ID), "err", err)
			continue
		}
		if err := m.cfg.Kernel.AddVxlanPeer(vxlanDev(n), peer); err != nil {
			m.cfg.Log.Warn("add vxlan peer", "network", n.Name, "endpoint", store.ShortID(ep.ID), "err", err)
		}
	}
}
