package dnsd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
)

// nsIdle is how long a sandbox's socket goroutine (and its OS thread) lives without a
// request: long enough to serve a burst of lookups without entering the netns again,
// short enough that idle sandboxes hold no thread.
const nsIdle = 10 * time.Second

// Sockets kept ready per sandbox, and the level at which the goroutine is asked to make
// more. Waking a goroutine locked to its own thread costs tens of µs on a VM (the thread,
// not just the goroutine, has to be scheduled), so it makes them in batches; a few idle
// unconnected sockets per busy sandbox are the price.
const (
	nsPool    = 8
	nsPoolLow = 4
)

// errNSClosed means the sandbox's DNS was stopped while a socket was being opened.
var errNSClosed = errors.New("sandbox dns stopped")

// nsSockets opens upstream UDP sockets inside one sandbox's netns (for its --dns servers)
// from a goroutine locked to an OS thread that stays in that netns, instead of a fresh
// thread and two setns(2) per socket (nsutil.Do). The goroutine keeps a few unconnected
// IPv4 sockets ready in pool; a caller connects one itself (connect(2) works in the
// socket's netns whatever the thread's), which binds it to a fresh random port. IPv6
// upstreams are opened by request. The thread is never handed back to the Go scheduler:
// when the goroutine ends (idle for idle, or close) the thread exits with it, so no other
// goroutine ever runs in the sandbox's netns. A socket keeps the netns it was created in.
type nsSockets struct {
	path   string
	idle   time.Duration // nsIdle; tests shorten it
	pool   chan int      // unconnected IPv4 UDP sockets made in the netns
	refill chan struct{} // asks the goroutine to fill pool
	stop   chan struct{} // closed by close

	mu     sync.Mutex    // guards following
	reqs   chan sockReq  // requests to the running goroutine, or nil when none runs
	exited chan struct{} // closed when that goroutine ends
	closed bool
}

type sockReq struct {
	addr  netip.AddrPort
	reply chan sockResult // buffered: the goroutine never waits on it
}

type sockResult struct {
	fd  int
	err error
}

func newNSSockets(path string) *nsSockets {
	return &nsSockets{path: path, idle: nsIdle, pool: make(chan int, nsPool), refill: make(chan struct{}, 1), stop: make(chan struct{})}
}

// open returns a non-blocking UDP socket connected to addr, created in the netns.
func (n *nsSockets) open(addr netip.AddrPort) (int, error) {
	if sa, ok := sockaddr4(addr); ok {
		select {
		case fd := <-n.pool:
			if len(n.pool) <= nsPoolLow {
				n.kick()
			}
			if err := unix.Connect(fd, sa); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("connect: %w", err)
			}
			return fd, nil
		default:
		}
	}
	req := sockReq{addr: addr, reply: make(chan sockResult, 1)}
	for {
		reqs, exited, err := n.running()
		if err != nil {
			return -1, err
		}
		select {
		case reqs <- req:
			r := <-req.reply
			return r.fd, r.err
		case <-exited: // went idle just now: start another
		case <-n.stop:
			return -1, errNSClosed
		}
	}
}

// running returns the goroutine's request channel, starting it if none runs.
func (n *nsSockets) running() (chan sockReq, chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, nil, errNSClosed
	}
	select {
	case <-n.exited:
		n.reqs = nil
	default:
	}
	if n.reqs == nil {
		n.reqs, n.exited = make(chan sockReq), make(chan struct{})
		go n.run(n.reqs, n.exited)
	}
	return n.reqs, n.exited, nil
}

// kick asks the goroutine, started if need be, to fill the pool.
func (n *nsSockets) kick() {
	if _, _, err := n.running(); err != nil {
		return
	}
	select {
	case n.refill <- struct{}{}:
	default:
	}
}

// close ends the goroutine, which closes the pooled sockets; later opens fail.
func (n *nsSockets) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.closed = true
		close(n.stop)
	}
}

// run is the locked goroutine. It deliberately never calls UnlockOSThread.
func (n *nsSockets) run(reqs chan sockReq, exited chan struct{}) {
	defer close(exited)
	defer n.drain()
	runtime.LockOSThread()
	err := enterNetNS(n.path)
	idle := time.NewTimer(n.idle)
	defer idle.Stop()
	for {
		for err == nil && len(n.pool) < cap(n.pool) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				break // callers get the error by request
			}
			n.pool <- fd // only this goroutine adds, so there is room
		}
		select {
		case req := <-reqs:
			if err != nil {
				req.reply <- sockResult{-1, err}
			} else {
				fd, err := udpSocket(req.addr)
				req.reply <- sockResult{fd, err}
			}
		case <-n.refill:
		case <-idle.C:
			return
		case <-n.stop:
			return
		}
		idle.Reset(n.idle)
	}
}

// drain closes the pooled sockets when the goroutine ends.
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

func enterNetNS(path string) error {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	return nil
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
