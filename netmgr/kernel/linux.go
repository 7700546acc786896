// Package kernel is berth's real netmgr.Kernel: bridges, veth pairs, named netns and
// routes, all through netlink and mount(2) (never the ip command). It keeps no state of
// its own: every method reads the kernel, changes only what differs, and may be repeated.
// It knows nothing of the store, IPAM or DNS.
package kernel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Linux changes the kernel objects of the netns the daemon runs in, and of the netns
// pinned at the paths it is given.
type Linux struct {
	log  *slog.Logger // always non-nil
	pool *netnsPool   // nil: CreateNetNS makes every netns itself
}

var _ netmgr.Kernel = (*Linux)(nil)

// New returns a Linux that logs kernel changes at Debug level on log (nil: discard).
func New(log *slog.Logger) *Linux {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Linux{log: log}
}

// DeleteLink removes a link of the daemon's netns; absent is not an error.
func (k *Linux) DeleteLink(name string) error {
	if err := deleteLinkWith(&netlink.Handle{}, name); err != nil { // the zero Handle: this netns
		return fmt.Errorf("delete link: %w", err)
	}
	k.log.Debug("link deleted", "link", name)
	return nil
}

// deleteLinkWith removes link name through nh; absent is not an error.
func deleteLinkWith(nh *netlink.Handle, name string) error {
	link, err := nh.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := nh.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// LinkNames lists the names of all links of the daemon's netns.
func (k *Linux) LinkNames() ([]string, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names, nil
}

// RouteDsts lists the destinations of the main table's IPv4 and IPv6 routes in the
// daemon's netns, masked, without default routes.
func (k *Linux) RouteDsts() ([]netip.Prefix, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteList(nil, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var dsts []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := ipNetToPrefix(r.Dst)
		if !ok || p.Bits() == 0 {
			continue // default route (netlink reports it as 0.0.0.0/0 or ::/0)
		}
		dsts = append(dsts, p.Masked())
	}
	return dsts, nil
}

// dumpRetries bounds how often a netlink dump is repeated when the kernel reports that
// the table changed during it (NLM_F_DUMP_INTR); a busy host rarely needs more than one.
const dumpRetries = 5

// retryDump calls list until its dump is not interrupted by a concurrent change.
func retryDump[T any](list func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return v, err
		}
	}
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// prefixAddr turns a gateway-style prefix (address with its subnet's length) into a
// netlink address; IPv6 addresses skip duplicate address detection so they are usable at
// once, as Docker does.
func prefixAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// ipNetToPrefix converts without masking; ok is false for a malformed IPNet.
func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	addr = addr.Unmap()
	if bits != addr.BitLen() {
		if bits == 128 && addr.Is4() && ones >= 96 {
			ones -= 96 // IPv4 address with an IPv6-length mask
		} else {
			return netip.Prefix{}, false
		}
	}
	return netip.PrefixFrom(addr, ones), true
}

// hasIPv6 reports whether any of addrs is an IPv6 address.
func hasIPv6(addrs []netip.Prefix) bool {
	for _, p := range addrs {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}

// enableIPv6 clears disable_ipv6 for dev in the netns of the calling thread, as the
// kernel refuses IPv6 addresses on a device where it is set. A kernel without IPv6 has no
// such file; adding the address then fails with a clearer error.
func enableIPv6(dev string) error {
	path := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
	cur, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enable ipv6 on %s: %w", dev, err)
	}
	if len(cur) > 0 && cur[0] == '0' {
		return nil
	}
	if err := os.WriteFile(path, []byte("0"), 0o644); err != nil {
		return fmt.Errorf("enable ipv6 on %s: %w", dev, err)
	}
	return nil
}
