package kernel

import (
	"errors"
	"fmt"
	"os"

	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A macvlan or ipvlan network has no bridge: each sandbox gets a child link of the
// network's parent (a host interface, a VLAN sub-interface of one, or a veth end berth
// made for an internal network), as in Docker's macvlan and ipvlan drivers and the CNI
// plugins of the same names. The host reaches its sandboxes only through a shim, a
// macvlan of its own on the parent (shim.go): the kernel does not pass traffic between a
// macvlan child and its parent.

// buildParent returns the link EnsureParent creates for a missing spec.Name: a VLAN
// sub-interface of the link at lowerIndex, or the veth pair of an internal parent. A plain
// parent is never created: its absence is the error.
func buildParent(spec netmgr.ParentSpec, lowerIndex int) (netlink.Link, error) {
	if err := checkLinkName("parent", spec.Name); err != nil {
		return nil, err
	}
	switch {
	case spec.Internal && spec.VLAN != 0:
		return nil, fmt.Errorf("parent %s: an internal parent has no VLAN (got %d)", spec.Name, spec.VLAN)
	case spec.Internal:
		return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: spec.Name}, PeerName: netmgr.PeerName(spec.Name)}, nil
	case spec.VLAN != 0:
		if spec.VLAN < 1 || spec.VLAN > 4094 {
			return nil, fmt.Errorf("parent %s: vlan id %d out of range 1-4094", spec.Name, spec.VLAN)
		}
		if spec.Link == "" {
			return nil, fmt.Errorf("parent %s: vlan %d has no lower link", spec.Name, spec.VLAN)
		}
		if lowerIndex <= 0 {
			return nil, fmt.Errorf("parent %s: lower link %s has no index", spec.Name, spec.Link)
		}
		return &netlink.Vlan{
			LinkAttrs:    netlink.LinkAttrs{Name: spec.Name, ParentIndex: lowerIndex},
			VlanId:       spec.VLAN,
			VlanProtocol: netlink.VLAN_PROTOCOL_8021Q,
		}, nil
	default:
		return nil, fmt.Errorf("parent interface %s not found", spec.Name)
	}
}

// macvlanModes and ipvlanModes map berth's (and Docker's) mode names; "" is the default.
var (
	macvlanModes = map[string]netlink.MacvlanMode{
		"": netlink.MACVLAN_MODE_BRIDGE, "bridge": netlink.MACVLAN_MODE_BRIDGE,
		"private": netlink.MACVLAN_MODE_PRIVATE, "vepa": netlink.MACVLAN_MODE_VEPA,
		"passthru": netlink.MACVLAN_MODE_PASSTHRU,
	}
	ipvlanModes = map[string]netlink.IPVlanMode{
		"": netlink.IPVLAN_MODE_L2, "l2": netlink.IPVLAN_MODE_L2,
		"l3": netlink.IPVLAN_MODE_L3, "l3s": netlink.IPVLAN_MODE_L3S,
	}
	ipvlanFlags = map[string]netlink.IPVlanFlag{
		"": netlink.IPVLAN_FLAG_BRIDGE, "bridge": netlink.IPVLAN_FLAG_BRIDGE,
		"private": netlink.IPVLAN_FLAG_PRIVATE, "vepa": netlink.IPVLAN_FLAG_VEPA,
	}
)

// buildSubIf returns the link AddSubIf asks the kernel for: spec's macvlan or ipvlan child
// of the parent at parentIndex, named SubIfTempName until it is renamed in the netns.
func buildSubIf(spec netmgr.SubIfSpec, parentIndex int) (netlink.Link, error) {
	if err := checkLinkName("ifname", spec.IfName); err != nil {
		return nil, err
	}
	if parentIndex <= 0 {
		return nil, fmt.Errorf("parent %s: no index", spec.Parent)
	}
	if spec.MTU < 0 {
		return nil, fmt.Errorf("mtu %d: must not be negative", spec.MTU)
	}
	attrs := netlink.LinkAttrs{
		Name:        netmgr.SubIfTempName(spec.NetNSPath, spec.IfName),
		ParentIndex: parentIndex,
		MTU:         spec.MTU, // 0: the kernel takes the parent's
	}
	switch spec.Kind {
	case "macvlan":
		mode, ok := macvlanModes[spec.Mode]
		if !ok {
			return nil, fmt.Errorf("macvlan mode %q: want bridge, private, vepa or passthru", spec.Mode)
		}
		if spec.Flag != "" {
			return nil, fmt.Errorf("flag %q: only ipvlan has one", spec.Flag)
		}
		if len(spec.MAC) != 0 && (len(spec.MAC) != 6 || spec.MAC[0]&1 != 0) {
			return nil, fmt.Errorf("mac %s: want 6 bytes, unicast", spec.MAC)
		}
		attrs.HardwareAddr = spec.MAC // nil: the kernel picks a random one
		if mode == netlink.MACVLAN_MODE_PASSTHRU {
			// The kernel gives a passthru child its parent's MAC whatever is asked, and
			// setting one later would change the parent's: ask for none.
			attrs.HardwareAddr = nil
		}
		return &netlink.Macvlan{LinkAttrs: attrs, Mode: mode}, nil
	case "ipvlan":
		mode, ok := ipvlanModes[spec.Mode]
		if !ok {
			return nil, fmt.Errorf("ipvlan mode %q: want l2, l3 or l3s", spec.Mode)
		}
		flag, ok := ipvlanFlags[spec.Flag]
		if !ok {
			return nil, fmt.Errorf("ipvlan flag %q: want bridge, private or vepa", spec.Flag)
		}
		if len(spec.MAC) != 0 {
			return nil, fmt.Errorf("mac %s: an ipvlan interface has its parent's MAC", spec.MAC)
		}
		return &netlink.IPVlan{LinkAttrs: attrs, Mode: mode, Flag: flag}, nil
	default:
		return nil, fmt.Errorf("kind %q: want macvlan or ipvlan", spec.Kind)
	}
}

func checkLinkName(field, name string) error {
	if name == "" || len(name) > unix.IFNAMSIZ-1 {
		return fmt.Errorf("%s name %q: must be 1 to %d bytes", field, name, unix.IFNAMSIZ-1)
	}
	return nil
}

// moduleErr says which kernel module a link kind needs when the kernel does not know the
// kind: rtnetlink answers EOPNOTSUPP when no driver registered it and none could be
// loaded (iproute2 prints that as "Unknown device type").
func moduleErr(kind string, err error) error {
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	switch kind {
	case "vlan":
		return fmt.Errorf("802.1q VLANs need the 8021q kernel module (modprobe 8021q): %w", err)
	case "ipvlan":
		return fmt.Errorf("ipvlan needs the ipvlan kernel module (modprobe ipvlan): %w", err)
	case "macvlan":
		return fmt.Errorf("macvlan needs the macvlan kernel module (modprobe macvlan): %w", err)
	}
	return err
}

// EnsureParent makes spec's parent exist and be up. An existing link is used as it is
// (created false) if it is an Ethernet device, the only kind the kernel hangs macvlan and
// ipvlan children on: berth never changes the type, VLAN or addresses of a link it finds. A
// missing VLAN sub-interface is made on spec.Link, and a missing internal parent as a veth
// pair with both ends up (this kernel has no dummy module); then created is true.
func (k *Linux) EnsureParent(spec netmgr.ParentSpec) (created bool, err error) {
	link, err := netlink.LinkByName(spec.Name)
	if err != nil && !isLinkNotFound(err) {
		return false, fmt.Errorf("parent %s: %w", spec.Name, err)
	}
	if link == nil {
		if link, err = k.createParent(spec); err != nil {
			return false, err
		}
		created = true
	}
	if t := link.Attrs().EncapType; t != "ether" {
		// The kernel takes macvlan and ipvlan children of Ethernet devices only, and says
		// no more than EINVAL at the first sandbox (a tun, a WireGuard or a loopback link).
		return false, fmt.Errorf("parent %s is not an Ethernet device (link/%s): macvlan and ipvlan need one", spec.Name, t)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		if created {
			k.DeleteLink(spec.Name)
		}
		return false, fmt.Errorf("parent %s: set up: %w", spec.Name, err)
	}
	if spec.Internal {
		// The peer has to be up too, or the kernel keeps the parent's carrier off and
		// with it every macvlan child's.
		if peer, err := netlink.LinkByName(netmgr.PeerName(spec.Name)); err == nil {
			if err := netlink.LinkSetUp(peer); err != nil {
				return false, fmt.Errorf("parent %s: set peer %s up: %w", spec.Name, peer.Attrs().Name, err)
			}
		} else if !isLinkNotFound(err) {
			return false, fmt.Errorf("parent %s: peer: %w", spec.Name, err)
		}
	}
	return created, nil
}

func (k *Linux) createParent(spec netmgr.ParentSpec) (netlink.Link, error) {
	lowerIndex := 0
	if !spec.Internal && spec.VLAN != 0 && spec.Link != "" {
		lower, err := netlink.LinkByName(spec.Link)
		if isLinkNotFound(err) {
			return nil, fmt.Errorf("parent interface %s not found (the lower link of %s)", spec.Link, spec.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("parent %s: lower link %s: %w", spec.Name, spec.Link, err)
		}
		lowerIndex = lower.Attrs().Index
	}
	want, err := buildParent(spec, lowerIndex)
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkAdd(want); err != nil {
		return nil, fmt.Errorf("parent %s: create: %w", spec.Name, moduleErr(want.Type(), err))
	}
	link, err := netlink.LinkByName(spec.Name)
	if err != nil {
		k.DeleteLink(spec.Name)
		return nil, fmt.Errorf("parent %s: %w", spec.Name, err)
	}
	k.log.Debug("parent created", "link", spec.Name, "type", want.Type(), "vlan", spec.VLAN)
	return link, nil
}

// AddSubIf creates spec's macvlan or ipvlan interface on spec.Parent. The create request
// carries the sandbox netns (IFLA_NET_NS_FD, as the CNI plugins do): the kernel finds the
// parent in the daemon's netns and registers the new link in the sandbox's, so a crash
// never leaves it in the daemon's. It is made under SubIfTempName, as the sandbox may
// still hold a stale IfName until that is removed, then renamed, given its addresses and
// set up. A stale link named IfName (or a half-made one under the temporary name) is
// replaced.
func (k *Linux) AddSubIf(spec netmgr.SubIfSpec) error {
	defer k.pool.kick() // as AddVeth: this is the step the pool's refill waits for
	if err := k.addSubIf(spec); err != nil {
		return fmt.Errorf("create %s %s on %s (in %s): %w", spec.Kind, spec.IfName, spec.Parent, spec.NetNSPath, err)
	}
	k.log.Debug("sub-interface created", "kind", spec.Kind, "parent", spec.Parent, "netns", spec.NetNSPath, "ifname", spec.IfName)
	return nil
}

func (k *Linux) addSubIf(spec netmgr.SubIfSpec) error {
	parent, err := netlink.LinkByName(spec.Parent)
	if isLinkNotFound(err) {
		return fmt.Errorf("parent interface %s not found", spec.Parent)
	}
	if err != nil {
		return fmt.Errorf("find parent: %w", err)
	}
	link, err := buildSubIf(spec, parent.Attrs().Index)
	if err != nil {
		return err
	}
	if spec.MTU > parent.Attrs().MTU {
		return fmt.Errorf("mtu %d: above parent %s's %d", spec.MTU, spec.Parent, parent.Attrs().MTU)
	}
	tmp := link.Attrs().Name
	ns, nh, done, err := openNetlinkIn(spec.NetNSPath)
	if err != nil {
		return err
	}
	defer done()
	for _, stale := range []string{spec.IfName, tmp} {
		if err := deleteLinkWith(nh, stale); err != nil {
			return fmt.Errorf("delete stale: %w", err)
		}
	}

	link.Attrs().Namespace = netlink.NsFd(ns.Fd())
	if err := netlink.LinkAdd(link); err != nil {
		if spec.Kind == "macvlan" && errors.Is(err, unix.EINVAL) {
			// What the kernel refuses this way, given a request buildSubIf accepted.
			return fmt.Errorf("add (a passthru macvlan must be the only macvlan on its parent): %w", err)
		}
		return fmt.Errorf("add: %w", moduleErr(spec.Kind, err))
	}
	ok := false
	defer func() {
		if !ok { // leave nothing half-made: a retry starts clean
			deleteLinkWith(nh, tmp)
			deleteLinkWith(nh, spec.IfName)
		}
	}()
	made, err := nh.LinkByName(tmp)
	if err != nil {
		return fmt.Errorf("find %s: %w", tmp, err)
	}
	if err := nh.LinkSetName(made, spec.IfName); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, spec.IfName, err)
	}
	if err := setupPeer(ns, nh, netmgr.VethSpec{IfName: spec.IfName, Addrs: spec.Addrs}); err != nil {
		return err
	}
	ok = true
	return nil
}

// DeleteLinkIn removes link ifName inside the netns at nsPath. An absent link is not an
// error, nor is a netns that is no longer pinned there (its links went with it).
func (k *Linux) DeleteLinkIn(nsPath, ifName string) error {
	if !k.NetNSExists(nsPath) {
		return nil
	}
	_, nh, done, err := openNetlinkIn(nsPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil // unpinned since the check
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", ifName, err)
	}
	defer done()
	if err := deleteLinkWith(nh, ifName); err != nil {
		return fmt.Errorf("delete link in %s: %w", nsPath, err)
	}
	k.log.Debug("link deleted", "link", ifName, "netns", nsPath)
	return nil
}
