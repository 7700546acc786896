package dnsd

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
)

// nsIdle is how long a sandbox's socket worker (and its OS thread) lives without a
// request: long enough to serve a burst of lookups without entering the netns again,
// short enough that idle sandboxes hold no thread.
const nsIdle = 10 * time.Second

// Sockets kept ready per sandbox, and the level at which the worker is asked to make
// more. Waking a goroutine locked to its own thread costs tens of µs on a VM, so it makes
// them in batches; a few idle unconnected sockets per busy sandbox are the price.
const (
	nsPool    = 8
	nsPoolLow = 4
)

// nsSockets opens upstream UDP sockets inside one sandbox's netns (for its --dns servers)
// on an nsutil.Worker, a thread that stays in that netns, instead of a fresh thread and
// two setns(2) per socket (nsutil.Do). The worker keeps a few unconnected IPv4 sockets
// ready in pool; a caller connects one itself (connect(2) works in the socket's netns
// whatever the thread's), which binds it to a fresh random port. IPv6 upstreams are opened
// by request. When the worker ends (idle, or close) the pooled sockets are closed. A
// socket keeps the netns it was created in.
type nsSockets struct {
	w    *nsutil.Worker
	pool chan int // unconnected IPv4 UDP sockets made in the netns; only the worker adds
}

// newNSSockets returns the socket opener of the netns ns, which must stay open until
// close returns.
func newNSSockets(ns *nsutil.Handle, idle time.Duration) *nsSockets {
	n := &nsSockets{pool: make(chan int, nsPool)}
	n.w = ns.NewWorker(nsutil.WorkerConfig{Idle: idle, Tend: n.fill, Exit: n.drain})
	return n
}

// open returns a non-blocking UDP socket connected to addr, created in the netns.
func (n *nsSockets) open(addr netip.AddrPort) (int, error) {
	if sa, ok := sockaddr4(addr); ok {
		select {
		case fd := <-n.pool:
			if len(n.pool) <= nsPoolLow {
				n.w.Kick()
			}
			if err := unix.Connect(fd, sa); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("connect: %w", err)
			}
			return fd, nil
		default:
		}
	}
	fd := -1
	err := n.w.Do(func() (err error) {
		fd, err = udpSocket(addr)
		return err
	})
	return fd, err
}

// close ends the worker, which closes the pooled sockets; later opens fail.
func (n *nsSockets) close() { n.w.Close() }

// fill tops the pool up, on the worker's thread. A failure is left for the next request,
// which reports it.
func (n *nsSockets) fill() {
	for len(n.pool) < cap(n.pool) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		n.pool <- fd
	}
}

// drain closes the pooled sockets when the worker ends.
func (n *nsSockets) drain() {
	for {
		select {
		case fd := <-n.pool:
			unix.Close(fd)
		default:
			return
		}
	}
}

// udpSocket opens a non-blocking UDP socket in the calling thread's netns and connects it
// to addr: the kernel picks a fresh random source port, and drops datagrams from any other
// address. A zone (link-local upstream) is looked up in that netns too.
func udpSocket(addr netip.AddrPort) (int, error) {
	sa, ok := sockaddr4(addr)
	family := unix.AF_INET
	if !ok {
		a := addr.Addr()
		family = unix.AF_INET6
		s6 := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			if i, err := strconv.Atoi(z); err == nil {
				s6.ZoneId = uint32(i)
			} else {
				ifi, err := net.InterfaceByName(z)
				if err != nil {
					return -1, err
				}
				s6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect: %w", err)
	}
	return fd, nil
}

// sockaddr4 is addr as an IPv4 socket address, if it is one.
func sockaddr4(addr netip.AddrPort) (unix.Sockaddr, bool) {
	if a := addr.Addr(); a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.Unmap().As4()}, true
	}
	return nil, false
}

// udpSocketIn is udpSocket in the netns at nsPath ("" for the daemon's own) for callers
// without a served sandbox's nsSockets (Explain of an unserved sandbox).
func udpSocketIn(nsPath string, addr netip.AddrPort) (int, error) {
	if nsPath == "" {
		return udpSocket(addr)
	}
	fd := -1
	err := nsutil.Do(nsPath, func() error {
		var err error
		fd, err = udpSocket(addr)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd) // made, but the thread could not switch back
		}
		return -1, err
	}
	return fd, nil
}
