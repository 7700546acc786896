package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The host shim of a macvlan network (-o berth.host_shim=true): a macvlan of the host's
// own on the network's parent, in bridge mode, through which the host reaches the
// sandboxes that the kernel keeps from the parent's own address.

// buildShim returns the shim macvlan EnsureShim creates on the parent at parentIndex.
func buildShim(spec netmgr.ShimSpec, parentIndex int) (netlink.Link, error) {
	if err := checkLinkName("shim", spec.Name); err != nil {
		return nil, err
	}
	if parentIndex <= 0 {
		return nil, fmt.Errorf("parent %s: no index", spec.Parent)
	}
	if len(spec.MAC) != 0 && len(spec.MAC) != 6 {
		return nil, fmt.Errorf("shim mac %s: want 6 bytes", spec.MAC)
	}
	if !spec.Addr.IsValid() {
		return nil, errors.New("shim address: missing")
	}
	return &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: spec.Name, ParentIndex: parentIndex, HardwareAddr: spec.MAC},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}, nil
}

// EnsureShim creates the host's shim macvlan on spec.Parent if it is missing (or remakes
// it if it is not a bridge-mode macvlan of that parent), sets its MAC and its one address
// and up, and makes the routes on it exactly spec.Routes.
func (k *Linux) EnsureShim(spec netmgr.ShimSpec) error {
	if err := k.ensureShim(spec); err != nil {
		return fmt.Errorf("ensure shim %s on %s: %w", spec.Name, spec.Parent, err)
	}
	return nil
}

func (k *Linux) ensureShim(spec netmgr.ShimSpec) error {
	parent, err := netlink.LinkByName(spec.Parent)
	if isLinkNotFound(err) {
		return fmt.Errorf("parent interface %s not found", spec.Parent)
	}
	if err != nil {
		return fmt.Errorf("find parent: %w", err)
	}
	want, err := buildShim(spec, parent.Attrs().Index)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(spec.Name)
	if err != nil && !isLinkNotFound(err) {
		return err
	}
	if mv, ok := link.(*netlink.Macvlan); link != nil &&
		(!ok || mv.ParentIndex != parent.Attrs().Index || mv.Mode != netlink.MACVLAN_MODE_BRIDGE) {
		// The name is berth's: a link under it that is not the shim wanted is a leftover
		// (the network's parent changed, or a crash mid-way), not a user's device.
		if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete stale %s: %w", link.Type(), err)
		}
		link = nil
	}
	if link == nil {
		if err := netlink.LinkAdd(want); err != nil {
			return fmt.Errorf("create: %w", moduleErr("macvlan", err))
		}
		k.log.Debug("shim created", "link", spec.Name, "parent", spec.Parent)
		if link, err = netlink.LinkByName(spec.Name); err != nil {
			return err
		}
	}
	if len(spec.MAC) > 0 && !bytes.Equal(link.Attrs().HardwareAddr, spec.MAC) {
		if err := netlink.LinkSetHardwareAddr(link, spec.MAC); err != nil {
			return fmt.Errorf("set mac %s: %w", spec.MAC, err)
		}
	}
	// The shim sits on the LAN: router advertisements there must not give the host
	// addresses or a default route through berth's device.
	if err := setIPv6Conf(spec.Name, "accept_ra", "0"); err != nil {
		return err
	}
	if spec.Addr.Addr().Is6() {
		if err := enableIPv6(spec.Name); err != nil {
			return err
		}
	}
	if err := syncAddrs(link, []netip.Prefix{spec.Addr}); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return k.syncShimRoutes(link, spec)
}

// syncShimRoutes makes the main table's routes on the shim exactly spec.Routes (scope
// link, which IPv6 routes do not have; source the shim's address where the family
// matches), leaving the kernel's own (proto kernel: link-local, the address's prefix).
func (k *Linux) syncShimRoutes(link netlink.Link, spec netmgr.ShimSpec) error {
	have, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteList(link, netlink.FAMILY_ALL)
	})
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	want := make([]netip.Prefix, 0, len(spec.Routes))
	for _, p := range spec.Routes {
		want = append(want, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked())
	}
	for _, r := range have {
		if r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		if r.Dst != nil {
			if p, ok := ipNetToPrefix(r.Dst); ok && slices.Contains(want, p.Masked()) {
				continue
			}
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete route %s: %w", r.Dst, err)
		}
		k.log.Debug("shim route deleted", "link", spec.Name, "dst", r.Dst)
	}
	src := spec.Addr.Addr().Unmap()
	for _, p := range want {
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Scope:     netlink.SCOPE_LINK,
			Protocol:  unix.RTPROT_STATIC,
		}
		if src.Is4() == p.Addr().Is4() {
			r.Src = src.AsSlice()
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s: %w", p, err)
		}
	}
	return nil
}

// setIPv6Conf writes /proc/sys/net/ipv6/conf/DEV/KEY in the daemon's netns; a kernel
// without IPv6 has no such file, and then there is nothing to set.
func setIPv6Conf(dev, key, value string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/"+key, []byte(value), 0o644)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("set ipv6 %s on %s: %w", key, dev, err)
	}
	return nil
}
