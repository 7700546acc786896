package dnsd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// forgetConntrack deletes the UDP conntrack entries for 127.0.0.11:53, and with v6 those
// for [fd62:6572:7468::11]:53, in the netns of the calling thread (a thread dnsd runs
// inside the sandbox's netns).
//
// NAT is decided once per conntrack entry, at its first packet. A UDP client that keeps one
// socket and retries (a resolver, a health probe) while the NAT table is missing or being
// replaced gets an entry without the translation, or with a stale one, and every retry
// refreshes it (the unreplied UDP timeout is 30 s), so it would never reach the new ports.
// Run right after the table is in place, this makes the client's next packet start an entry
// the table translates.
//
// The netns's own entry count is read first: deleting walks the conntrack hash, which all
// netns share (milliseconds), and a netns made moments ago has no entry at all.
func forgetConntrack(v6 bool) error {
	count, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count") // this thread's netns
	if errors.Is(err, os.ErrNotExist) || err == nil && strings.TrimSpace(string(count)) == "0" {
		return nil // no conntrack in this kernel or netns, or no entries
	}
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER) // a socket in this thread's netns
	if err != nil {
		return fmt.Errorf("forget conntrack: netlink: %w", err)
	}
	defer h.Close()
	for _, f := range natFamilies(v6) {
		family, filter := uint8(unix.AF_INET), &netlink.ConntrackFilter{}
		if f.table == natIPv6.table {
			family = unix.AF_INET6
		}
		if err := filter.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return err
		}
		if err := filter.AddIP(netlink.ConntrackOrigDstIP, net.IP(f.addr)); err != nil {
			return err
		}
		if err := filter.AddPort(netlink.ConntrackOrigDstPort, dnsPort); err != nil {
			return err
		}
		if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.InetFamily(family), filter); err != nil {
			return fmt.Errorf("forget conntrack: %w", err)
		}
	}
	return nil
}
