package netmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strconv"

	"berth/store"
)

// Overlay networks (issue 16) are global: recorded in the cluster store (Config.Cluster),
// mirrored into every host's own store (ApplyRemote), and made on each host of a bridge
// like a bridge network's, with the same gateway address everywhere (each host's bridge is
// its own sandboxes' gateway), plus a VXLAN device on that bridge with a static FDB and
// neighbour entry per remote endpoint. Nothing floods across the VXLAN: ARP for the
// gateway never leaves the host, and ARP for a remote endpoint is answered locally by the
// device from its neighbour entries.

// vxlanDev is the name of n's VXLAN device.
func vxlanDev(n *store.Network) string { return VxlanName(n.VNI, n.ID) }

// isVxlanName reports whether l has VxlanName's form: "vx-", 6 hex, "-", 5 hex.
func isVxlanName(l string) bool {
	return len(l) == 15 && l[:3] == "vx-" && l[9] == '-' && isHex(l[3:9]) && isHex(l[10:])
}

// userMTU is the MTU asked for at create (OptMTU), or 0.
func userMTU(n *store.Network) int {
	mtu, _ := strconv.Atoi(n.Options[OptMTU])
	return mtu
}

// overlayMTU is the MTU of n's endpoints on this host: the one asked for, if any, but no
// more than what fits in the VXLAN device's.
func overlayMTU(n *store.Network, vxlanMTU int) int {
	if u := userMTU(n); u > 0 && u < vxlanMTU {
		return u
	}
	return vxlanMTU
}

// pickOverlaySubnet returns the first /24 of Docker's overlay pool 10.0.0.0/8 that
// overlaps neither a network nor a route.
func pickOverlaySubnet(used, routes []netip.Prefix) (netip.Prefix, error) {
	for i := 0; i < 1<<16; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		if !overlaps(p, used) && !overlaps(p, routes) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in the overlay pool 10.0.0.0/8: %w", store.ErrConflict)
}

// ensureOverlay makes n's bridge and VXLAN device (both idempotent) and returns the MTU
// of n's endpoints on this host, which the bridge is given too.
func (m *Manager) ensureOverlay(n *store.Network) (int, error) {
	if err := m.ensureBridge(n); err != nil {
		return 0, err
	}
	if m.cfg.Cluster == nil {
		return 0, errors.New("vxlan device: no cluster store configured (--cluster-store)")
	}
	vmtu, err := m.cfg.Kernel.EnsureVxlan(VxlanSpec{Name: vxlanDev(n), VNI: n.VNI,
		Local: m.cfg.Cluster.Advertise(), Bridge: n.Bridge})
	if err != nil {
		return 0, fmt.Errorf("vxlan device: %w", err)
	}
	mtu := overlayMTU(n, vmtu)
	if mtu != n.MTU {
		c := *n // the bridge's spec only: records are never modified
		c.MTU = mtu
		if err := m.ensureBridge(&c); err != nil {
			return 0, err
		}
	}
	return mtu, nil
}

// createOverlayLocked creates n in the cluster store, then here: its record, bridge,
// VXLAN device and rules. A failure here removes it from the cluster store again. It
// returns the record as committed (its VNI and this host's MTU set).
func (m *Manager) createOverlayLocked(ctx context.Context, n *store.Network) (*store.Network, error) {
	vni, err := m.cfg.Cluster.CreateNetwork(ctx, n)
	if err != nil {
		if ctx.Err() != nil {
			// The client went away during the call: the store may have taken it anyway.
			m.undoClusterCreate(ctx, n)
		}
		return nil, err
	}
	n.VNI = vni
	err = m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutNetwork(n) })
	if err != nil {
		m.undoClusterCreate(ctx, n)
		return nil, err
	}
	crashPoint("network-create:recorded")
	mtu, err := m.ensureOverlay(n)
	if err == nil && mtu != n.MTU {
		c := n.Copy()
		c.MTU = mtu
		if err = m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutNetwork(c) }); err == nil {
			n = c
		}
	}
	if err == nil {
		err = ctx.Err() // the last chance to undo: the rest is the firewall's
	}
	if err == nil {
		err = m.syncFirewall()
	}
	if err != nil {
		_ = m.deleteDevices(n)
		if uerr := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.DeleteNetwork(n) }); uerr != nil {
			err = errors.Join(err, uerr)
		}
		m.undoClusterCreate(ctx, n)
		m.syncFirewallOrWarn("failed network create")
		return nil, err
	}
	return n, nil
}

// undoClusterCreate removes n from the cluster store after a failed create, whatever ctx
// says (the client that went away is why it runs); a failure is logged: the network then
// stays in the cluster, and comes back here through the mirror, to be removed by hand.
func (m *Manager) undoClusterCreate(ctx context.Context, n *store.Network) {
	if err := m.cfg.Cluster.RemoveNetwork(context.WithoutCancel(ctx), n.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.cfg.Log.Error("undo network create in the cluster store", "network", n.Name, "err", err)
	}
}

// removeFromCluster removes global network n from the cluster store, which refuses while
// another host has an endpoint or an address claim on it. Already gone there is fine.
func (m *Manager) removeFromCluster(ctx context.Context, n *store.Network) error {
	if m.cfg.Cluster == nil {
		return fmt.Errorf("global network %s needs the cluster store (berth daemon --cluster-store etcd://...): %w",
			n.Name, store.ErrConflict)
	}
	if err := m.cfg.Cluster.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// peerOf is what n's VXLAN device needs of remote endpoint ep.
func peerOf(ep *store.Endpoint) (VxlanPeer, error) {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil || len(mac) != 6 {
		return VxlanPeer{}, fmt.Errorf("mac %q: not an Ethernet address", ep.MAC)
	}
	if !ep.HostAddr.IsValid() {
		return VxlanPeer{}, errors.New("no host address")
	}
	p := VxlanPeer{MAC: mac, Host: ep.HostAddr}
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if a.IsValid() {
			p.Addrs = append(p.Addrs, a)
		}
	}
	return p, nil
}

// remotePeers lists the peers of every remote endpoint of network netID in snap.
func remotePeers(snap *store.Snapshot, netID string) []VxlanPeer {
	var out []VxlanPeer
	for _, ep := range snap.NetworkEndpoints(netID) {
		if !ep.Remote() {
			continue
		}
		if p, err := peerOf(ep); err == nil { // ApplyRemote records no other
			out = append(out, p)
		}
	}
	return out
}

// restoreOverlay recreates n's bridge and VXLAN device at a start and syncs the device's
// peers with the remote endpoints in the store. Only the bridge is a must: without its
// VXLAN device the network still works between this host's sandboxes, so a failure there
// (or no cluster store configured) is a warning, and the mirror's next full update tries
// again.
func (m *Manager) restoreOverlay(snap *store.Snapshot, n *store.Network) error {
	if err := m.ensureBridge(n); err != nil {
		return err
	}
	log := m.cfg.Log.With("network", n.Name)
	if m.cfg.Cluster == nil {
		log.Warn("global network without a cluster store (--cluster-store): no vxlan device")
		return nil
	}
	mtu, err := m.ensureOverlay(n)
	if err != nil {
		log.Warn("restore global network", "err", err)
		return nil
	}
	if mtu != n.MTU {
		c := n.Copy()
		c.MTU = mtu
		if err := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutNetwork(c) }); err != nil {
			return err
		}
	}
	if err := m.cfg.Kernel.SyncVxlanPeers(vxlanDev(n), remotePeers(snap, n.ID)); err != nil {
		log.Warn("restore vxlan peers", "err", err)
	}
	return nil
}

// sameRecord reports whether two records are equal; Created by time.Equal, since a record
// read back from JSON can differ from the one written in its representation only.
func sameRecord(a, b *store.Network) bool {
	if !a.Created.Equal(b.Created) {
		return false
	}
	c := *b
	c.Created = a.Created
	return reflect.DeepEqual(a, &c)
}
