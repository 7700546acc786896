package nsutil

import (
	"fmt"
	"net"
	"strconv"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Handle is an open network namespace: a file descriptor on its nsfs file (a pin such as
// /run/netns/NAME, or /proc/PID/ns/net). While it is open the namespace lives, and every
// Do enters that same namespace even if its path is re-pinned to another one meanwhile,
// which a path opened afresh for each trip cannot promise. A Handle may be used from
// several goroutines; Close it once, when no Do is running.
type Handle struct {
	h    netns.NsHandle
	name string // for errors: the path it was opened from
}

// Open opens the netns file at path.
func Open(path string) (*Handle, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	return &Handle{h: h, name: path}, nil
}

// OpenPid opens the netns of process pid (/proc/PID/ns/net).
func OpenPid(pid int) (*Handle, error) {
	return Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
}

// FromFd makes a Handle of fd, an open netns file the Handle then owns (Close closes it).
func FromFd(fd int, name string) *Handle { return &Handle{h: netns.NsHandle(fd), name: name} }

// Fd is the handle's file descriptor, for netlink.NewHandleAt, LinkSetNsFd and the like. It
// stays valid until Close.
func (h *Handle) Fd() int { return int(h.h) }

// Name is the path the handle was opened from.
func (h *Handle) Name() string { return h.name }

// ID identifies the namespace the handle holds.
func (h *Handle) ID() (ID, error) { return IDOfFd(int(h.h)) }

// Close releases the namespace. It is a no-op on a nil or closed Handle.
func (h *Handle) Close() error {
	if h == nil || h.h == -1 {
		return nil
	}
	err := unix.Close(int(h.h))
	h.h = -1
	return err
}

// Do runs fn on a new OS thread that has joined the namespace, and returns fn's error. fn
// must not start goroutines that expect to stay in the namespace: they run on other
// threads. Sockets fn opens stay in the namespace after the thread leaves it.
func (h *Handle) Do(fn func() error) error { return doIn(h.name, h.h, fn) }

// ListenUDP opens a UDP socket bound to addr ("127.0.0.11:0") inside the namespace.
func (h *Handle) ListenUDP(addr string) (*net.UDPConn, error) {
	return listenUDP(h.name, h.Do, addr)
}

// ListenTCP opens a TCP listener bound to addr inside the namespace.
func (h *Handle) ListenTCP(addr string) (*net.TCPListener, error) {
	return listenTCP(h.name, h.Do, addr)
}
