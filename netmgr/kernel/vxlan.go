package kernel

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"berth/netmgr"
)

// An overlay network's data plane on one host is a bridge with a VXLAN device as one of
// its ports, as in Docker's overlay driver. The device neither learns nor floods: every
// remote endpoint gets a static FDB entry (its MAC -> its host's underlay address) and a
// permanent neighbour entry (its IP -> its MAC) from which the device answers the local
// sandboxes' ARP and ND itself (proxy), so no broadcast ever crosses the underlay and no
// multicast group is needed. flannel's vxlan backend programs the same two tables.

// Encapsulation overhead: outer Ethernet 14 + IP + UDP 8 + VXLAN 8 bytes. EnsureVxlan
// returns the MTU left so the caller can give the network's veths the same one.
const (
	vxlanOverhead4 = 14 + 20 + 8 + 8 // the "underlay MTU - 50" of Docker and flannel
	vxlanOverhead6 = 14 + 40 + 8 + 8
)

// maxVNI is the largest 24-bit VXLAN network identifier.
const maxVNI = 1<<24 - 1

// daemonNetlink is the zero Handle, which netlink's package-level functions use too: a
// socket per request, in the netns of the calling thread (the daemon's).
var daemonNetlink = &netlink.Handle{}

// EnsureVxlan creates spec's VXLAN device in the daemon's netns if missing, sets its MTU
// to the underlay device's minus the encapsulation overhead, puts it on spec.Bridge and
// sets it up, and returns that MTU. An existing device with the same VNI, port and local
// address is kept; one that differs in any of them is an error naming the field, since
// changing them under live peers would silently cut the network.
func (k *Linux) EnsureVxlan(spec netmgr.VxlanSpec) (mtu int, err error) {
	return k.ensureVxlan(daemonNetlink, spec)
}

// DeleteVxlan removes a VXLAN device of the daemon's netns, and with it its FDB and
// neighbour entries; absent is not an error.
func (k *Linux) DeleteVxlan(name string) error { return k.deleteVxlan(daemonNetlink, name) }

// AddVxlanPeer programs the FDB and neighbour entries of a remote endpoint on the VXLAN
// device dev, replacing any it had (the endpoint may have moved to another host).
func (k *Linux) AddVxlanPeer(dev string, p netmgr.VxlanPeer) error {
	return k.addVxlanPeer(daemonNetlink, dev, p)
}

// DeleteVxlanPeer removes the entries of a remote endpoint from dev; absent entries are
// not an error.
func (k *Linux) DeleteVxlanPeer(dev string, p netmgr.VxlanPeer) error {
	return k.deleteVxlanPeer(daemonNetlink, dev, p)
}

// SyncVxlanPeers makes dev's static FDB and permanent neighbour entries exactly those of
// want: it adds what is missing and removes the rest, so a restarted daemon converges
// from whatever the kernel kept without replaying events.
func (k *Linux) SyncVxlanPeers(dev string, want []netmgr.VxlanPeer) error {
	return k.syncVxlanPeers(daemonNetlink, dev, want)
}

func (k *Linux) ensureVxlan(nh *netlink.Handle, spec netmgr.VxlanSpec) (int, error) {
	mtu, created, err := ensureVxlan(nh, spec)
	if err != nil {
		return 0, fmt.Errorf("ensure vxlan %s (vni %d): %w", spec.Name, spec.VNI, err)
	}
	if created {
		k.log.Debug("vxlan created", "link", spec.Name, "vni", spec.VNI, "local", spec.Local, "mtu", mtu)
	}
	return mtu, nil
}

func ensureVxlan(nh *netlink.Handle, spec netmgr.VxlanSpec) (mtu int, created bool, err error) {
	port := spec.Port
	if port == 0 {
		port = netmgr.VxlanPort
	}
	switch {
	case spec.Name == "" || len(spec.Name) > unix.IFNAMSIZ-1:
		return 0, false, fmt.Errorf("name must be 1 to %d bytes", unix.IFNAMSIZ-1)
	case spec.VNI < 1 || spec.VNI > maxVNI:
		return 0, false, fmt.Errorf("vni out of range 1-%d", maxVNI)
	case !spec.Local.IsValid():
		return 0, false, errors.New("no local address")
	}
	local := spec.Local.Unmap()
	link, err := nh.LinkByName(spec.Name)
	if err != nil && !isLinkNotFound(err) {
		return 0, false, err
	}
	if err == nil {
		if err := vxlanConflict(link, spec.VNI, port, local); err != nil {
			return 0, false, err
		}
	}
	mtu, err = underlayMTU(nh, local)
	if err != nil {
		return 0, false, err
	}
	br, err := nh.LinkByName(spec.Bridge)
	if err != nil {
		return 0, false, fmt.Errorf("find bridge %s: %w", spec.Bridge, err)
	}
	if link == nil {
		link = &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: spec.Name, MTU: mtu},
			VxlanId:   spec.VNI,
			SrcAddr:   net.IP(local.AsSlice()),
			Port:      port,
			Learning:  false,
			Proxy:     true,
		}
		if err := nh.LinkAdd(link); err != nil {
			return 0, false, fmt.Errorf("create: %w", err)
		}
		created = true
		defer func() {
			if err != nil {
				nh.LinkDel(link) // a retry starts clean rather than adopting a half-made device
			}
		}()
		if link, err = nh.LinkByName(spec.Name); err != nil {
			return 0, false, err
		}
	} else if link.Attrs().MTU != mtu {
		// The underlay's MTU may have changed since the device was made.
		if err := nh.LinkSetMTU(link, mtu); err != nil {
			return 0, false, fmt.Errorf("set mtu %d: %w", mtu, err)
		}
	}
	if link.Attrs().MasterIndex != br.Attrs().Index {
		if err := nh.LinkSetMaster(link, br); err != nil {
			return 0, false, fmt.Errorf("attach to %s: %w", spec.Bridge, err)
		}
	}
	if err := nh.LinkSetUp(link); err != nil {
		return 0, false, fmt.Errorf("set up: %w", err)
	}
	return mtu, created, nil
}

// vxlanConflict reports how an existing link differs from the VXLAN device wanted.
// Learning on or proxy off are conflicts too: they would flood or leave ARP unanswered.
func vxlanConflict(link netlink.Link, vni, port int, local netip.Addr) error {
	vx, ok := link.(*netlink.Vxlan)
	if !ok {
		return fmt.Errorf("link exists with type %s", link.Type())
	}
	have, _ := netip.AddrFromSlice(vx.SrcAddr)
	switch {
	case vx.VxlanId != vni:
		return fmt.Errorf("device exists with vni %d", vx.VxlanId)
	case vx.Port != port:
		return fmt.Errorf("device exists with port %d, want %d", vx.Port, port)
	case have.Unmap() != local:
		return fmt.Errorf("device exists with local %s, want %s", have.Unmap(), local)
	case vx.Learning:
		return errors.New("device exists with learning on")
	case !vx.Proxy:
		return errors.New("device exists with proxy off")
	}
	return nil
}

// underlayMTU is the MTU left for the overlay on the device that holds local.
func underlayMTU(nh *netlink.Handle, local netip.Addr) (int, error) {
	family, overhead := netlink.FAMILY_V4, vxlanOverhead4
	if local.Is6() {
		family, overhead = netlink.FAMILY_V6, vxlanOverhead6
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return nh.AddrList(nil, family) })
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); !ok || ip.Unmap() != local {
			continue
		}
		dev, err := nh.LinkByIndex(a.LinkIndex)
		if err != nil {
			return 0, fmt.Errorf("underlay device of %s: %w", local, err)
		}
		return dev.Attrs().MTU - overhead, nil
	}
	return 0, fmt.Errorf("local address %s is on no device", local)
}

func (k *Linux) deleteVxlan(nh *netlink.Handle, name string) error {
	link, err := nh.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete vxlan %s: %w", name, err)
	}
	if link.Type() != "vxlan" {
		return fmt.Errorf("delete vxlan %s: link has type %s", name, link.Type())
	}
	if err := nh.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete vxlan %s: %w", name, err)
	}
	k.log.Debug("vxlan deleted", "link", name)
	return nil
}

// fdbEntry is the static forwarding entry of a remote MAC: "self" puts it in the VXLAN
// device's own table (where the remote's address lives), not the bridge's.
func fdbEntry(index int, mac net.HardwareAddr, host netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    index,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           net.IP(host.Unmap().AsSlice()),
		HardwareAddr: mac,
	}
}

func neighEntry(index int, mac net.HardwareAddr, ip netip.Addr) *netlink.Neigh {
	family := netlink.FAMILY_V4
	if ip.Unmap().Is6() {
		family = netlink.FAMILY_V6
	}
	return &netlink.Neigh{
		LinkIndex:    index,
		Family:       family,
		State:        netlink.NUD_PERMANENT,
		Type:         unix.RTN_UNICAST,
		IP:           net.IP(ip.Unmap().AsSlice()),
		HardwareAddr: mac,
	}
}

func vxlanIndex(nh *netlink.Handle, dev string) (int, error) {
	link, err := nh.LinkByName(dev)
	if err != nil {
		return 0, err
	}
	if link.Type() != "vxlan" {
		return 0, fmt.Errorf("link has type %s", link.Type())
	}
	return link.Attrs().Index, nil
}

func (k *Linux) addVxlanPeer(nh *netlink.Handle, dev string, p netmgr.VxlanPeer) error {
	if err := addVxlanPeer(nh, dev, p); err != nil {
		return fmt.Errorf("add vxlan peer %s on %s: %w", p.MAC, dev, err)
	}
	k.log.Debug("vxlan peer added", "link", dev, "mac", p.MAC.String(), "host", p.Host)
	return nil
}

func addVxlanPeer(nh *netlink.Handle, dev string, p netmgr.VxlanPeer) error {
	if len(p.MAC) != 6 || !p.Host.IsValid() {
		return errors.New("peer needs a MAC and a host address")
	}
	index, err := vxlanIndex(nh, dev)
	if err != nil {
		return err
	}
	// FDB first: the device answers ARP from the neighbour entry only for a MAC it can
	// reach.
	if err := nh.NeighSet(fdbEntry(index, p.MAC, p.Host)); err != nil {
		return fmt.Errorf("fdb entry to %s: %w", p.Host, err)
	}
	for _, ip := range p.Addrs {
		if err := nh.NeighSet(neighEntry(index, p.MAC, ip)); err != nil {
			return fmt.Errorf("neighbour %s: %w", ip, err)
		}
	}
	return nil
}

func (k *Linux) deleteVxlanPeer(nh *netlink.Handle, dev string, p netmgr.VxlanPeer) error {
	if err := deleteVxlanPeer(nh, dev, p); err != nil {
		return fmt.Errorf("delete vxlan peer %s on %s: %w", p.MAC, dev, err)
	}
	k.log.Debug("vxlan peer deleted", "link", dev, "mac", p.MAC.String(), "host", p.Host)
	return nil
}

func deleteVxlanPeer(nh *netlink.Handle, dev string, p netmgr.VxlanPeer) error {
	index, err := vxlanIndex(nh, dev)
	if isLinkNotFound(err) {
		return nil // the device took its entries with it
	}
	if err != nil {
		return err
	}
	for _, ip := range p.Addrs {
		if err := nh.NeighDel(neighEntry(index, p.MAC, ip)); err != nil && !isNeighAbsent(err) {
			return fmt.Errorf("neighbour %s: %w", ip, err)
		}
	}
	if len(p.MAC) == 0 {
		return nil
	}
	if err := nh.NeighDel(fdbEntry(index, p.MAC, p.Host)); err != nil && !isNeighAbsent(err) {
		return fmt.Errorf("fdb entry: %w", err)
	}
	return nil
}

func isNeighAbsent(err error) bool { return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) }

func (k *Linux) syncVxlanPeers(nh *netlink.Handle, dev string, want []netmgr.VxlanPeer) error {
	added, removed, err := syncVxlanPeers(nh, dev, want)
	if err != nil {
		return fmt.Errorf("sync vxlan peers on %s: %w", dev, err)
	}
	if added+removed > 0 {
		k.log.Debug("vxlan peers synced", "link", dev, "added", added, "removed", removed)
	}
	return nil
}

// syncVxlanPeers returns how many FDB and neighbour entries it added and removed.
func syncVxlanPeers(nh *netlink.Handle, dev string, want []netmgr.VxlanPeer) (added, removed int, err error) {
	index, err := vxlanIndex(nh, dev)
	if err != nil {
		return 0, 0, err
	}
	fdb := make(map[string]netip.Addr)   // MAC -> host
	neigh := make(map[netip.Addr]string) // IP -> MAC
	for _, p := range want {
		if len(p.MAC) != 6 || !p.Host.IsValid() {
			return 0, 0, fmt.Errorf("peer %s: needs a MAC and a host address", p.MAC)
		}
		mac, host := p.MAC.String(), p.Host.Unmap()
		if h, ok := fdb[mac]; ok && h != host {
			return 0, 0, fmt.Errorf("peer %s wanted on both %s and %s", mac, h, host)
		}
		fdb[mac] = host
		for _, ip := range p.Addrs {
			neigh[ip.Unmap()] = mac
		}
	}

	// Stale neighbours go before stale FDB entries, and new FDB entries come before new
	// neighbours: the device never answers ARP for a MAC it cannot forward to.
	var stale []*netlink.Neigh
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		have, err := retryDump(func() ([]netlink.Neigh, error) { return nh.NeighList(index, family) })
		if err != nil {
			return 0, 0, fmt.Errorf("list neighbours: %w", err)
		}
		for _, n := range have {
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok || n.State&netlink.NUD_PERMANENT == 0 {
				continue // the kernel's own
			}
			if mac, ok := neigh[ip.Unmap()]; ok && mac == n.HardwareAddr.String() {
				delete(neigh, ip.Unmap())
				continue
			}
			stale = append(stale, neighEntry(index, n.HardwareAddr, ip))
		}
	}
	have, err := retryDump(func() ([]netlink.Neigh, error) { return nh.NeighList(index, unix.AF_BRIDGE) })
	if err != nil {
		return 0, 0, fmt.Errorf("list fdb: %w", err)
	}
	var staleFDB []*netlink.Neigh
	for _, n := range have {
		// Only the device's own entries with a remote: the bridge reports its learned
		// entries for this port (NTF_MASTER) in the same dump.
		host, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.Flags&netlink.NTF_SELF == 0 {
			continue
		}
		mac := n.HardwareAddr.String()
		if h, ok := fdb[mac]; ok && h == host.Unmap() {
			delete(fdb, mac)
			continue
		}
		staleFDB = append(staleFDB, fdbEntry(index, n.HardwareAddr, host))
	}

	for _, n := range stale {
		if err := nh.NeighDel(n); err != nil && !isNeighAbsent(err) {
			return added, removed, fmt.Errorf("delete neighbour %s: %w", n.IP, err)
		}
		removed++
	}
	for _, n := range staleFDB {
		if err := nh.NeighDel(n); err != nil && !isNeighAbsent(err) {
			return added, removed, fmt.Errorf("delete fdb entry %s: %w", n.HardwareAddr, err)
		}
		removed++
	}
	// Sorted, so the order of kernel changes (and which error comes first) is repeatable.
	for _, mac := range slices.Sorted(maps.Keys(fdb)) {
		hw, _ := net.ParseMAC(mac)
		if err := nh.NeighSet(fdbEntry(index, hw, fdb[mac])); err != nil {
			return added, removed, fmt.Errorf("fdb entry %s to %s: %w", mac, fdb[mac], err)
		}
		added++
	}
	for _, ip := range slices.SortedFunc(maps.Keys(neigh), netip.Addr.Compare) {
		hw, _ := net.ParseMAC(neigh[ip])
		if err := nh.NeighSet(neighEntry(index, hw, ip)); err != nil {
			return added, removed, fmt.Errorf("neighbour %s: %w", ip, err)
		}
		added++
	}
	return added, removed, nil
}
