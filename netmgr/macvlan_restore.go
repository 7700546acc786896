package netmgr

// Restore's part for macvlan and ipvlan networks: their parents, the sandboxes'
// interfaces on them and the host shims, after a restart, a kill -9 or a reboot.

import (
	"fmt"
	"net"

	"berth/internal/nsutil"
	"berth/store"
)

// parentState is what Restore found of a macvlan or ipvlan network's parent.
type parentState int

const (
	parentKept   parentState = iota // there: the sandboxes' interfaces on it are too, unless deleted one by one
	parentRemade                    // made again (a reboot, or deleted): every interface that was on it is gone
	parentBroken                    // missing and not berth's to make: the network's sandboxes are left as they are
)

// parentStates holds the parentState of each macvlan and ipvlan network, by ID.
type parentStates map[string]parentState

// restoreParent makes n's parent exist again, if berth makes it. A parent that is not
// berth's and is gone (or any other failure) leaves the network broken with a warning,
// rather than stopping every other network and sandbox from coming back.
func (m *Manager) restoreParent(n *store.Network) parentState {
	created, err := m.ensureParent(n)
	if err != nil {
		m.cfg.Log.Warn("parent of network unavailable: its sandboxes have no interface on it", "network", n.Name, "parent", n.Parent.Name, "err", err)
		return parentBroken
	}
	if created {
		m.cfg.Log.Warn("recreated missing parent", "network", n.Name, "parent", n.Parent.Name)
		return parentRemade
	}
	return parentKept
}

// restoreSubIf gives ep, an endpoint of sb on a macvlan or ipvlan network, its interface
// back if its parent was remade or the interface is gone from the netns; it reports
// whether it did. An interface that is there is left alone: remaking it would drop the
// sandbox's connections on every daemon restart.
func (m *Manager) restoreSubIf(snap *store.Snapshot, sb *store.Sandbox, ep *store.Endpoint, parents parentStates) (bool, error) {
	n, err := snap.Network(ep.NetworkID)
	if err != nil {
		return false, fmt.Errorf("endpoint %s: %w", store.ShortID(ep.ID), err)
	}
	switch parents[n.ID] {
	case parentBroken:
		return false, nil
	case parentKept:
		if !missingIn(sb.NetNSPath, ep.IfName) {
			return false, nil
		}
	}
	m.cfg.Log.Warn("recreating missing interface", "sandbox", sb.Name, "network", n.Name, "ifname", ep.IfName, "parent", n.Parent.Name)
	return true, m.attach(sb, n, ep)
}

// missingIn reports whether the netns at nsPath has no link ifName. A netns that cannot be
// entered says nothing: false.
func missingIn(nsPath, ifName string) bool {
	missing := false
	_ = nsutil.Do(nsPath, func() error {
		_, err := net.InterfaceByName(ifName)
		missing = err != nil
		return nil
	})
	return missing
}

// restoreShims makes the host shims of the macvlan networks whose parent is there, with
// the routes of the sandboxes that came back.
func (m *Manager) restoreShims(parents parentStates) {
	snap := m.cfg.Store.Snapshot()
	for _, n := range snap.Networks() {
		if !n.OnParent() || !n.HostShim || parents[n.ID] == parentBroken {
			continue
		}
		if err := m.cfg.Kernel.EnsureShim(m.shimSpec(snap, n)); err != nil {
			m.cfg.Log.Warn("host shim", "network", n.Name, "shim", ShimName(n.ID), "err", err)
		}
	}
}
