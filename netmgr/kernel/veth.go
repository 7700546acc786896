package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"berth/internal/nsutil"
	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AddVeth creates an endpoint's veth pair with the sandbox end made directly inside the
// sandbox netns (so its eth0 never meets the host's), the host end on the bridge and up,
// and the sandbox end's MAC, MTU and addresses set and up. A stale pair from a crash (the
// same host name, or the same name inside the sandbox) is replaced.
func (k *Linux) AddVeth(spec netmgr.VethSpec) error {
	defer k.pool.kick()
	if err := k.addVeth(spec); err != nil {
		return fmt.Errorf("create veth %s (%s in %s): %w", spec.HostName, spec.IfName, spec.NetNSPath, err)
	}
	k.log.Debug("veth created", "link", spec.HostName, "netns", spec.NetNSPath, "ifname", spec.IfName)
	return nil
}

func (k *Linux) addVeth(spec netmgr.VethSpec) error {
	ns, nh, done, err := openNetlinkIn(spec.NetNSPath)
	if err != nil {
		return err
	}
	defer done()
	br, err := netlink.LinkByName(spec.Bridge)
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", spec.Bridge, err)
	}

	// Remove stale ends; deleting either end of a veth removes both.
	if err := k.DeleteLink(spec.HostName); err != nil {
		return err
	}
	if stale, err := nh.LinkByName(spec.IfName); err == nil {
		if err := nh.LinkDel(stale); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete stale %s: %w", spec.IfName, err)
		}
	} else if !isLinkNotFound(err) {
		return fmt.Errorf("find %s: %w", spec.IfName, err)
	}

	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: spec.HostName, MTU: spec.MTU},
		PeerName:         spec.IfName,
		PeerHardwareAddr: spec.MAC, // nil: kernel picks one
		PeerNamespace:    netlink.NsFd(ns.Fd()),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			k.DeleteLink(spec.HostName) // takes the sandbox end with it
		}
	}()

	host, err := netlink.LinkByName(spec.HostName)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("attach to %s: %w", spec.Bridge, err)
	}
	// Hairpin lets a sandbox reach its own published port through the daemon's address:
	// the DNATed packet must go back out of the port it came in on (Docker does the same
	// when it runs without its userland proxy).
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin on %s: %w", spec.HostName, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", spec.HostName, err)
	}
	if err := setupPeer(ns, nh, spec); err != nil {
		return err
	}
	ok = true
	return nil
}

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE (linux/if_link.h): no link-local address.
const addrGenModeNone = 1

// setupPeer configures the sandbox end through nh, a netlink handle in the sandbox netns
// ns.
func setupPeer(ns *nsutil.Handle, nh *netlink.Handle, spec netmgr.VethSpec) error {
	peer, err := nh.LinkByName(spec.IfName)
	if err != nil {
		return fmt.Errorf("find %s: %w", spec.IfName, err)
	}
	// A netns berth made has lo up already; an adopted one (--netns) may not, and the
	// embedded DNS listens on 127.0.0.11.
	if lo, err := nh.LinkByName("lo"); err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if err := nh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	if hasIPv6(spec.Addrs) {
		// sysctls are per netns: write it from a thread inside the sandbox's.
		err := ns.Do(func() error { return enableIPv6(spec.IfName) })
		if err != nil {
			return err
		}
	} else if err := nh.LinkSetIP6AddrGenMode(peer, addrGenModeNone); err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
		// An endpoint without IPv6 gets no link-local address either, as in Docker (26+
		// sets disable_ipv6 on such an interface): no DAD, router solicitations or MLD
		// reports, which the bridge would flood to every other sandbox. Set before the
		// link is up, so none is ever sent; IPv6 itself stays on for the user's own use.
		return fmt.Errorf("ipv6 address generation off on %s: %w", spec.IfName, err)
	}
	for _, p := range spec.Addrs {
		if err := nh.AddrAdd(peer, prefixAddr(p)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add address %s to %s: %w", p, spec.IfName, err)
		}
	}
	if err := nh.LinkSetUp(peer); err != nil {
		return fmt.Errorf("set %s up: %w", spec.IfName, err)
	}
	return nil
}

// SetDefaultRoutes makes the netns at nsPath route by default via gw4 on ifName4 and gw6
// on ifName6. A zero gateway removes that family's default routes.
func (k *Linux) SetDefaultRoutes(nsPath, ifName4 string, gw4 netip.Addr, ifName6 string, gw6 netip.Addr) error {
	_, nh, done, err := openNetlinkIn(nsPath)
	if err != nil {
		return fmt.Errorf("set default routes: %w", err)
	}
	defer done()
	if err := setDefaultRoute(nh, netlink.FAMILY_V4, ifName4, gw4); err != nil {
		return fmt.Errorf("set ipv4 default route in %s: %w", nsPath, err)
	}
	if err := setDefaultRoute(nh, netlink.FAMILY_V6, ifName6, gw6); err != nil {
		return fmt.Errorf("set ipv6 default route in %s: %w", nsPath, err)
	}
	return nil
}

func setDefaultRoute(nh *netlink.Handle, family int, ifName string, gw netip.Addr) error {
	if gw.IsValid() {
		link, err := nh.LinkByName(ifName)
		if err != nil {
			return err
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IP(gw.Unmap().AsSlice())}
		if err := nh.RouteReplace(r); err != nil {
			return fmt.Errorf("via %s dev %s: %w", gw, ifName, err)
		}
		return nil
	}
	// The filter's nil Dst matches default routes only (netlink compares with 0/0).
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return nh.RouteListFiltered(family, &netlink.Route{}, netlink.RT_FILTER_DST)
	})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	for _, r := range routes {
		if err := nh.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete %s: %w", r, err)
		}
	}
	return nil
}

// openNetlinkIn opens the netns at path and a netlink handle in it (netlinkIn); done
// closes both. The netns handle stays for callers that hand its fd to the kernel.
func openNetlinkIn(path string) (ns *nsutil.Handle, nh *netlink.Handle, done func(), err error) {
	if ns, err = nsutil.Open(path); err != nil {
		return nil, nil, nil, err
	}
	if nh, err = netlinkIn(ns); err != nil {
		ns.Close()
		return nil, nil, nil, fmt.Errorf("netlink in netns %s: %w", path, err)
	}
	return ns, nh, func() { nh.Close(); ns.Close() }, nil
}

// netlinkIn opens a netlink handle whose socket lives in ns, so its requests act there
// without a thread entering ns. It keeps working after ns is closed.
func netlinkIn(ns *nsutil.Handle) (*netlink.Handle, error) {
	// One socket: the default opens three (route, xfrm, netfilter).
	return netlink.NewHandleAt(netns.NsHandle(ns.Fd()), unix.NETLINK_ROUTE)
}
