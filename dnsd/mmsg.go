package dnsd

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgConn reads and writes datagrams of an IPv4 UDP socket in batches, with recvmmsg and
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
	addrs []unix.RawSockaddrInet4

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
	m := &mmsgConn{rc: rc, hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch),
		addrs: make([]unix.RawSockaddrInet4, batch)}
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
		from[i] = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	}
	return got, err
}

// write sends bufs[i] to to[i], as many as the kernel takes in one sendmmsg, and returns
// how many it took (the rest are the caller's to send again or drop).
func (m *mmsgConn) write(bufs [][]byte, to []netip.AddrPort) (int, error) {
	k := min(len(bufs), len(m.hdrs))
	for i := range k {
		m.addrs[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to[i].Addr().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&m.addrs[i].Port))[:], to[i].Port())
		m.setHeader(i, bufs[i])
	}
	return m.call(unix.SYS_SENDMMSG, k, false)
}

// setHeader points header i at buf and at socket address i.
func (m *mmsgConn) setHeader(i int, buf []byte) {
	m.iovs[i].Base = &buf[0]
	m.iovs[i].SetLen(len(buf))
	m.hdrs[i] = unix.Mmsghdr{Hdr: unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&m.addrs[i])),
		Namelen: unix.SizeofSockaddrInet4,
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
