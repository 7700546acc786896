package dnsd

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgConn reads and writes datagrams of a UDP socket (IPv4, or IPv6 for the listener on
// fd62:6572:7468::11) in batches, with recvmmsg and
// sendmmsg, and allocates nothing per datagram: the headers, iovecs and socket addresses
// are reused, and senders come back as netip.AddrPort values. (golang.org/x/net/ipv4 does
// the same calls but allocates a net.UDPAddr per datagram read, which at 100k queries/s is
// garbage enough to make the collector's share grow with the daemon's heap.)
//
// Not safe for concurrent use: one reader goroutine owns it.
type mmsgConn struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	addrs []unix.RawSockaddrInet6 // of an IPv4 socket: each holds a RawSockaddrInet4
	v6    bool                    // the socket is IPv6

	// The system call in progress, for do: kept here so that the function passed to the
	// RawConn is made once, not a closure per call.
	trap  uintptr
	k     int
	got   int
	errno syscall.Errno
	doFn  func(fd uintptr) bool
}

func newMmsgConn(c *net.UDPConn, batch int) (*mmsgConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	a, _ := c.LocalAddr().(*net.UDPAddr)
	m := &mmsgConn{rc: rc, hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch),
		addrs: make([]unix.RawSockaddrInet6, batch), v6: a != nil && a.IP.To4() == nil}
	m.doFn = m.do
	return m, nil
}

// read fills bufs[i][:n[i]] with the waiting datagrams, at least one (it waits for it), at
// most len(bufs), and from[i] with their senders; it returns how many. A datagram longer
// than its buffer is cut, as by recvfrom.
func (m *mmsgConn) read(bufs [][]byte, n []int, from []netip.AddrPort) (int, error) {
	k := min(len(bufs), len(m.hdrs))
	for i := range k {
		m.setHeader(i, bufs[i])
	}
	got, err := m.call(unix.SYS_RECVMMSG, k, true)
	for i := range got {
		n[i] = int(m.hdrs[i].Len)
		sa := &m.addrs[i]
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		if m.v6 {
			from[i] = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
		} else {
			from[i] = netip.AddrPortFrom(netip.AddrFrom4(m.addr4(i).Addr), port)
		}
	}
	return got, err
}

// write sends bufs[i] to to[i], as many as the kernel takes in one sendmmsg, and returns
// how many it took (the rest are the caller's to send again or drop).
func (m *mmsgConn) write(bufs [][]byte, to []netip.AddrPort) (int, error) {
	k := min(len(bufs), len(m.hdrs))
	for i := range k {
		if m.v6 {
			m.addrs[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to[i].Addr().As16()}
		} else {
			*m.addr4(i) = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to[i].Addr().As4()}
		}
		// Port sits at the same offset in both.
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&m.addrs[i].Port))[:], to[i].Port())
		m.setHeader(i, bufs[i])
	}
	return m.call(unix.SYS_SENDMMSG, k, false)
}

// addr4 is socket address i of an IPv4 socket.
func (m *mmsgConn) addr4(i int) *unix.RawSockaddrInet4 {
	return (*unix.RawSockaddrInet4)(unsafe.Pointer(&m.addrs[i]))
}

// setHeader points header i at buf and at socket address i.
func (m *mmsgConn) setHeader(i int, buf []byte) {
	m.iovs[i].Base = &buf[0]
	m.iovs[i].SetLen(len(buf))
	namelen := uint32(unix.SizeofSockaddrInet4)
	if m.v6 {
		namelen = unix.SizeofSockaddrInet6
	}
	m.hdrs[i] = unix.Mmsghdr{Hdr: unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&m.addrs[i])),
		Namelen: namelen,
		Iov:     &m.iovs[i],
	}}
	m.hdrs[i].Hdr.SetIovlen(1)
}

// call runs recvmmsg or sendmmsg on the first k headers through the runtime's poller: it
// parks the goroutine while the socket would block, as net.UDPConn does.
func (m *mmsgConn) call(trap uintptr, k int, reading bool) (int, error) {
	m.trap, m.k, m.got, m.errno = trap, k, 0, 0
	var err error
	if reading {
		err = m.rc.Read(m.doFn)
	} else {
		err = m.rc.Write(m.doFn)
	}
	if err != nil {
		return 0, err // the socket is closed (net.ErrClosed inside)
	}
	if m.errno != 0 {
		return 0, m.errno
	}
	return m.got, nil
}

// do makes the system call call set up; false means the socket would block.
func (m *mmsgConn) do(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(m.trap, fd, uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(m.k), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		m.got, m.errno = int(r), e
		return true
	}
}
