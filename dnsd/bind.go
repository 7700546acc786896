package dnsd

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A served sandbox's listening sockets: UDP and TCP on 127.0.0.11 and, where IPv6 is on in
// its netns, on fd62:6572:7468::11 (added to its lo here), on one pair of ports.

// bindTries bounds the random port pairs bind tries when the IPv6 sockets find a port of
// the IPv4 ones taken (by a process in the sandbox: the kernel picked it free for
// 127.0.0.11 only). One in a thousand ports taken makes a retry rare; the bound only stops
// a netns whose every port is taken from looping.
const bindTries = 8

// bind opens the sockets on 127.0.0.11 (and, if e.v6, on serviceAddr6) in the sandbox's
// netns, on ports p (zero: random ones, the same for both addresses), and runs also (if
// not nil) on the same thread. On failure no socket stays open.
func (e *sandbox) bind(p natPorts, also func() error) error {
	err := e.netns.Do(func() (err error) {
		e.addServiceAddr6()
		for try := 1; ; try++ {
			err = e.bindOnce(p)
			if err == nil || p != (natPorts{}) || !errors.Is(err, unix.EADDRINUSE) || try == bindTries {
				break
			}
		}
		if err != nil {
			return err
		}
		if also != nil {
			return also()
		}
		return nil
	})
	if err != nil {
		e.closeSockets() // one failed, or made but the thread could not switch back
	}
	return err
}

// bindOnce is one try of bind, on the calling thread, which is in the sandbox's netns.
// An IPv6 socket that fails for another reason than a taken port turns the IPv6 listener
// off, as when the address could not be added.
func (e *sandbox) bindOnce(p natPorts) (err error) {
	defer func() {
		if err != nil {
			e.closeSockets()
		}
	}()
	if e.udp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: serviceIP[:], Port: int(p.udp)}); err != nil {
		return fmt.Errorf("listen udp %s:%d in netns %q: %w", serviceAddr, p.udp, e.nsPath, err)
	}
	if e.tcp, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: serviceIP[:], Port: int(p.tcp)}); err != nil {
		return fmt.Errorf("listen tcp %s:%d in netns %q: %w", serviceAddr, p.tcp, e.nsPath, err)
	}
	if !e.v6 {
		return nil
	}
	p = e.ports()
	if e.udp6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: serviceIP6[:], Port: int(p.udp)}); err == nil {
		e.tcp6, err = net.ListenTCP("tcp6", &net.TCPAddr{IP: serviceIP6[:], Port: int(p.tcp)})
	}
	if err != nil && !errors.Is(err, unix.EADDRINUSE) {
		e.v6, e.v6Off = false, err
		e.closeSockets6()
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on [%s]:%d/udp, %d/tcp in netns %q: %w", serviceAddr6, p.udp, p.tcp, e.nsPath, err)
	}
	return nil
}

// loopback is the netns's lo: LOOPBACK_IFINDEX, 1 in every netns.
var loopback = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}}

// serviceAddr6Net is serviceAddr6 as the /128 on lo.
var serviceAddr6Net = &net.IPNet{IP: net.IP(serviceIP6[:]), Mask: net.CIDRMask(128, 128)}

// addServiceAddr6 adds serviceAddr6/128 to lo, on the calling thread (in the sandbox's
// netns), once per listen, and sets e.v6: an address already there (left by an earlier
// run, or the same run's previous serve) is fine. NODAD makes it usable at once (a
// tentative address cannot be bound). A netns with IPv6 off on lo (disable_ipv6 = 1:
// EACCES) or in the kernel refuses it, and gets the IPv4 listener alone.
func (e *sandbox) addServiceAddr6() {
	if e.v6Tried {
		return
	}
	e.v6Tried = true
	err := netlink.AddrAdd(loopback, &netlink.Addr{IPNet: serviceAddr6Net, Flags: unix.IFA_F_NODAD})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		e.v6, e.v6Off = false, fmt.Errorf("add %s to lo: %w", serviceAddr6, err)
		return
	}
	e.v6 = true
}

// delServiceAddr6 removes serviceAddr6 from lo, on the calling thread (in the sandbox's
// netns); an address already gone is fine.
func delServiceAddr6() error {
	err := netlink.AddrDel(loopback, &netlink.Addr{IPNet: serviceAddr6Net})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove %s from lo: %w", serviceAddr6, err)
	}
	return nil
}

// forgetConntrack is forgetConntrack for e's addresses, on a thread in its netns.
func (e *sandbox) forgetConntrack() error { return forgetConntrack(e.v6) }

// ports returns the ports of the open sockets.
func (e *sandbox) ports() natPorts {
	return natPorts{udp: uint16(e.udp.LocalAddr().(*net.UDPAddr).Port), tcp: uint16(e.tcp.Addr().(*net.TCPAddr).Port)}
}

// closeSockets closes whatever listen opened and forgets it.
func (e *sandbox) closeSockets() {
	if e.udp != nil {
		e.udp.Close()
		e.udp = nil
	}
	if e.tcp != nil {
		e.tcp.Close()
		e.tcp = nil
	}
	e.closeSockets6()
}

// closeSockets6 closes the IPv6 sockets listen opened and forgets them.
func (e *sandbox) closeSockets6() {
	if e.udp6 != nil {
		e.udp6.Close()
		e.udp6 = nil
	}
	if e.tcp6 != nil {
		e.tcp6.Close()
		e.tcp6 = nil
	}
}
