package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnsureBridge creates the bridge if missing and makes its MAC, MTU and global addresses
// match spec, then sets it up. The MAC is set explicitly so the kernel never changes it
// to follow the lowest port MAC as veths join and leave.
func (k *Linux) EnsureBridge(spec netmgr.BridgeSpec) error {
	if err := k.ensureBridge(spec); err != nil {
		return fmt.Errorf("ensure bridge %s: %w", spec.Name, err)
	}
	return nil
}

func (k *Linux) ensureBridge(spec netmgr.BridgeSpec) error {
	link, err := netlink.LinkByName(spec.Name)
	if isLinkNotFound(err) {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{
			Name:         spec.Name,
			HardwareAddr: spec.MAC,
			MTU:          spec.MTU,
		}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		k.log.Debug("bridge created", "link", spec.Name)
		link, err = netlink.LinkByName(spec.Name)
	}
	if err != nil {
		return err
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("link exists with type %s", link.Type())
	}
	attrs := link.Attrs()
	if len(spec.MAC) > 0 && !bytes.Equal(attrs.HardwareAddr, spec.MAC) {
		if err := netlink.LinkSetHardwareAddr(link, spec.MAC); err != nil {
			return fmt.Errorf("set mac %s: %w", spec.MAC, err)
		}
	}
	if spec.MTU > 0 && attrs.MTU != spec.MTU {
		if err := netlink.LinkSetMTU(link, spec.MTU); err != nil {
			return fmt.Errorf("set mtu %d: %w", spec.MTU, err)
		}
	}
	if hasIPv6(spec.Addrs) {
		// The daemon's goroutines all run in the daemon's netns, so /proc/sys/net is its.
		if err := enableIPv6(spec.Name); err != nil {
			return err
		}
	}
	if err := syncAddrs(link, spec.Addrs); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// syncAddrs adds the missing addrs to link and removes its other global addresses
// (link-local and host-scope ones are the kernel's).
func syncAddrs(link netlink.Link, addrs []netip.Prefix) error {
	have, err := retryDump(func() ([]netlink.Addr, error) {
		return netlink.AddrList(link, netlink.FAMILY_ALL)
	})
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	want := make(map[netip.Prefix]bool, len(addrs))
	for _, p := range addrs {
		want[p] = true
	}
	for _, a := range have {
		p, ok := ipNetToPrefix(a.IPNet)
		if !ok || a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		if want[p] {
			delete(want, p) // present: nothing to add
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s: %w", p, err)
		}
	}
	for _, p := range addrs {
		if !want[p] {
			continue
		}
		if err := netlink.AddrAdd(link, prefixAddr(p)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add address %s: %w", p, err)
		}
	}
	return nil
}
