// Package portmap holds the host sockets of published ports, as Docker's daemon does: one
// bound socket per published port and host address, held in the daemon's netns for as long
// as the mapping exists, so that no other process can take the port, and a port some other
// process already has is refused before anything is made.
//
// Most sockets only hold their port: the firewall's DNAT takes every packet before a
// socket could see it (prerouting and output come before the local delivery). Where NAT
// cannot carry the traffic (IPv6 to a sandbox with only IPv4, and [::1], which IPv6 never
// routes off the host), the socket is the listener of a small proxy in the daemon, as
// Docker's userland proxy: TCP connections are accepted and copied both ways to the
// sandbox's address, UDP datagrams are relayed per client address.
//
// It knows nothing of sandboxes or the store: its owners are opaque strings, and a proxy
// asks a function for its target at each new connection.
package portmap

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Binding is one host socket of a published port.
type Binding struct {
	Proto string         // "tcp" or "udp"
	Host  netip.AddrPort // the address bound (0.0.0.0, ::, or one address); port non-zero
	// Target makes the socket a proxy's listener: each new TCP connection or UDP flow goes
	// to the address it returns at that moment (the sandbox's address follows network
	// connect and disconnect), and is dropped on an error. Nil: NAT carries the traffic and
	// the socket only holds the port.
	Target func() (netip.AddrPort, error)
}

func (b Binding) String() string { return b.Host.String() + "/" + b.Proto }

// BindError is a host port that could not be bound.
type BindError struct {
	Binding Binding
	Err     error // from bind(2) or listen(2): unix.EADDRINUSE when another socket has it
}

func (e *BindError) Error() string {
	return fmt.Sprintf("bind %s: %v", e.Binding, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// holdBacklog is the listen backlog of a TCP socket that only holds its port. It is never
// accepted from, and DNAT means no SYN reaches it; listen is still needed, because a bound
// TCP socket that is not listening does not stop another SO_REUSEADDR socket from binding
// and listening on the same port.
const holdBacklog = 1

// proxyBacklog is the listen backlog of a proxy's listener: connections wait there only
// until the accept loop takes them.
const proxyBacklog = 128

// Map is the set of held sockets, by owner. The zero Map is not usable; call New.
type Map struct {
	log *slog.Logger

	mu   sync.Mutex           // guards following
	held map[string][]*socket // owner -> its sockets, in the order held
}

// New returns an empty Map that logs proxy faults to log.
func New(log *slog.Logger) *Map {
	return &Map{log: log, held: map[string][]*socket{}}
}

// Hold binds every binding of bs for owner, all or none: on an error (a *BindError for the
// first binding that failed) nothing of bs stays bound. Sockets owner holds already stay.
// Proxies start at once.
func (m *Map) Hold(owner string, bs []Binding) error {
	socks := make([]*socket, 0, len(bs))
	for _, b := range bs {
		s, err := bind(b)
		if err != nil {
			for _, s := range socks {
				s.close()
			}
			return &BindError{Binding: b, Err: err}
		}
		socks = append(socks, s)
	}
	for _, s := range socks {
		if err := s.serve(m.log.With("binding", s.b.String())); err != nil {
			for _, s := range socks {
				s.close()
			}
			return &BindError{Binding: s.b, Err: err}
		}
	}
	m.mu.Lock()
	m.held[owner] = append(m.held[owner], socks...)
	m.mu.Unlock()
	return nil
}

// Release closes owner's sockets and stops its proxies (connections under way are cut). It
// is a no-op for an owner that holds nothing.
func (m *Map) Release(owner string) {
	m.mu.Lock()
	socks := m.held[owner]
	delete(m.held, owner)
	m.mu.Unlock()
	for _, s := range socks {
		s.close()
	}
}

// Held returns the bindings owner holds, in the order held.
func (m *Map) Held(owner string) []Binding {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Binding, 0, len(m.held[owner]))
	for _, s := range m.held[owner] {
		out = append(out, s.b)
	}
	return out
}

// Len is the number of sockets held, for all owners.
func (m *Map) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, socks := range m.held {
		n += len(socks)
	}
	return n
}

// socket is one held socket: a raw fd while it only holds its port, or a proxy.
type socket struct {
	b  Binding
	fd int // the bound socket; -1 once handed to the proxy (which has its own) or closed

	stop func() // stops the proxy and closes its socket; nil without one
}

// bind makes the socket of b in the calling thread's netns. IPv6 sockets are IPV6_V6ONLY,
// so that :: and 0.0.0.0 are two sockets, as Docker binds them. TCP sockets set
// SO_REUSEADDR, as Docker's: a port whose last connections are in TIME_WAIT can be bound
// again, and two listeners still conflict. UDP sockets do not: on UDP, SO_REUSEADDR lets a
// second socket with the flag bind the same port, which is what the socket is there to stop.
func bind(b Binding) (*socket, error) {
	if !b.Host.IsValid() || b.Host.Port() == 0 || b.Host.Addr().Zone() != "" {
		return nil, fmt.Errorf("invalid host address")
	}
	addr := b.Host.Addr().Unmap()
	var typ int
	switch b.Proto {
	case "tcp":
		typ = unix.SOCK_STREAM
	case "udp":
		typ = unix.SOCK_DGRAM
	default:
		return nil, fmt.Errorf("protocol %q: want tcp or udp", b.Proto)
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: int(b.Host.Port()), Addr: addr.As16()})
	if addr.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(b.Host.Port()), Addr: addr.As4()}
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	err = func() error {
		if family == unix.AF_INET6 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
				return os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
			}
		}
		if typ == unix.SOCK_STREAM {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
			}
		}
		if err := unix.Bind(fd, sa); err != nil {
			return err // EADDRINUSE, EADDRNOTAVAIL: the caller's message names the address
		}
		if typ == unix.SOCK_STREAM {
			backlog := holdBacklog
			if b.Target != nil {
				backlog = proxyBacklog
			}
			if err := unix.Listen(fd, backlog); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &socket{b: b, fd: fd}, nil
}

// serve starts the proxy of a socket that has a Target; the others stay as they are.
func (s *socket) serve(log *slog.Logger) error {
	if s.b.Target == nil {
		return nil
	}
	// The net package takes a copy of the fd into its poller; the raw one is closed here so
	// that a proxied port costs one fd, as a held one does.
	f := os.NewFile(uintptr(s.fd), s.b.String())
	s.fd = -1
	defer f.Close()
	if s.b.Proto == "tcp" {
		ln, err := net.FileListener(f)
		if err != nil {
			return err
		}
		s.stop = serveTCP(ln.(*net.TCPListener), s.b.Target, log)
		return nil
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return err
	}
	s.stop = serveUDP(pc.(*net.UDPConn), s.b.Target, log, udpIdle)
	return nil
}

func (s *socket) close() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// IsInUse reports whether err says the address is taken by another socket.
func IsInUse(err error) bool { return errors.Is(err, unix.EADDRINUSE) }

// IsUnavailable reports whether err says the address family or address is not there at
// all (IPv6 turned off in the netns, or an address no interface has).
func IsUnavailable(err error) bool {
	return errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL)
}
