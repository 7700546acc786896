package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"berth/internal/nsutil"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ForgetUDPConntrack deletes, in the netns at nsPath, the UDP conntrack entries whose
// original destination is dst.
//
// NAT is decided once per conntrack entry, at its first packet. A UDP client that keeps
// one socket and retries (a resolver, a health probe) while the NAT rules for dst are
// missing or being replaced gets an entry without the translation, or with a stale one,
// and every retry refreshes it (the unreplied UDP timeout is 30 s), so the client never
// reaches the new rules. Called right after the rules are in place, this makes the
// client's next packet start a fresh entry that they translate.
//
// The netns's own entry count is read first: listing entries walks the conntrack hash,
// which all netns share (262,144 buckets here, 3-4 ms), and most netns have none.
func (k *Linux) ForgetUDPConntrack(nsPath string, dst netip.AddrPort) error {
	var count []byte
	err := nsutil.Do(nsPath, func() error {
		var err error
		count, err = os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count") // this thread's netns
		return err
	})
	if errors.Is(err, os.ErrNotExist) || err == nil && strings.TrimSpace(string(count)) == "0" {
		return nil // no conntrack in this kernel or netns, or no entries
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("forget conntrack in %s: open netns: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("forget conntrack in %s: netlink: %w", nsPath, err)
	}
	defer h.Close()
	f := &netlink.ConntrackFilter{}
	family := netlink.InetFamily(unix.AF_INET)
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
		return err
	}
	if err := f.AddIP(netlink.ConntrackOrigDstIP, net.IP(dst.Addr().AsSlice())); err != nil {
		return err
	}
	if err := f.AddPort(netlink.ConntrackOrigDstPort, dst.Port()); err != nil {
		return err
	}
	n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, family, f)
	if err != nil {
		return fmt.Errorf("forget conntrack in %s: %w", nsPath, err)
	}
	if n > 0 {
		k.log.Debug("conntrack entries deleted", "netns", nsPath, "dst", dst, "n", n)
	}
	return nil
}
