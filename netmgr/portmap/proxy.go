package portmap

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialTimeout bounds the connect to the sandbox: a sandbox that does not answer (nothing
// listens: a reset comes at once; a dropped SYN: it times out) does not keep an accepted
// connection open for the kernel's two minutes of SYN retries.
const dialTimeout = 10 * time.Second

// udpIdle is how long a UDP flow lives without a datagram either way: docker-proxy's
// UDPConnTrackTimeout, itself the kernel's nf_conntrack_udp_timeout_stream.
const udpIdle = 90 * time.Second

// maxUDPFlows bounds the flows of one UDP socket (docker-proxy has no bound): each flow is
// a socket and a goroutine, and a spoofed flood of client addresses must not use up the
// daemon's fds. Datagrams of new clients beyond it are dropped until flows expire.
const maxUDPFlows = 1024

// udpBufSize is the largest UDP payload (65,535 minus the IPv4 and UDP headers), as
// docker-proxy's UDPBufSize: a datagram is relayed whole or not at all.
const udpBufSize = 65507

// serveTCP accepts on ln and copies each connection to and from Target, closing each
// direction when its reader sees EOF (half-close), so protocols that shut down their
// sending side first (HTTP/1.0 clients, `nc -N`) still get their answer. It returns stop,
// which closes ln, cuts the connections under way and waits for them.
func serveTCP(ln *net.TCPListener, target func() (netip.AddrPort, error), log *slog.Logger) (stop func()) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards following
		conns = map[net.Conn]struct{}{}
		done  bool
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	untrack := func(c net.Conn) {
		mu.Lock()
		delete(conns, c)
		mu.Unlock()
		c.Close()
	}
	wg.Go(func() {
		var delay time.Duration
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// Out of fds, for instance: back off as net/http does, rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("proxy accept", "err", err, "retry", delay)
				time.Sleep(delay)
				continue
			}
			delay = 0
			if !track(c) {
				c.Close()
				return
			}
			wg.Go(func() {
				defer untrack(c)
				to, err := target()
				if err != nil {
					log.Debug("proxy: no target", "client", c.RemoteAddr(), "err", err)
					return
				}
				d := net.Dialer{Timeout: dialTimeout}
				up, err := d.Dial("tcp", to.String())
				if err != nil {
					log.Debug("proxy dial", "client", c.RemoteAddr(), "target", to, "err", err)
					return
				}
				if !track(up) {
					up.Close()
					return
				}
				defer untrack(up)
				pipe(c, up.(*net.TCPConn))
			})
		}
	})
	return func() {
		ln.Close()
		mu.Lock()
		done = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// pipe copies a to b and b to a until both directions have ended; each direction's end
// is passed on as a half-close, so the other one can still finish.
func pipe(a, b *net.TCPConn) {
	var wg sync.WaitGroup
	one := func(dst, src *net.TCPConn) {
		defer wg.Done()
		io.Copy(dst, src) // an error ends this direction like an EOF: the other side sees a FIN
		dst.CloseWrite()
		src.CloseRead()
	}
	wg.Add(2)
	go one(a, b)
	go one(b, a)
	wg.Wait()
}

// udpFlow is one client's datagrams to the target, on a socket connected to the target
// (its replies come back on it alone).
type udpFlow struct {
	conn *net.UDPConn
	last atomic.Int64 // unix nanoseconds of the last datagram either way
}

// serveUDP relays datagrams from clients of pc to Target and back: one flow per client
// address, each with its own socket to the target, dropped after idle with no datagram
// either way. It returns stop, which closes pc and every flow and waits for them.
func serveUDP(pc *net.UDPConn, target func() (netip.AddrPort, error), log *slog.Logger, idle time.Duration) (stop func()) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards following
		flows = map[netip.AddrPort]*udpFlow{}
		full  bool // maxUDPFlows reached and logged; reset when a flow ends
	)
	// replies copies the target's datagrams of one flow back to its client, and ends the
	// flow once it has been idle.
	replies := func(client netip.AddrPort, f *udpFlow) {
		defer func() {
			mu.Lock()
			if flows[client] == f {
				delete(flows, client)
				full = false
			}
			mu.Unlock()
			f.conn.Close()
		}()
		rc, err := f.conn.SyscallConn()
		if err != nil {
			return
		}
		for {
			deadline := time.Unix(0, f.last.Load()).Add(idle)
			f.conn.SetReadDeadline(deadline)
			bp, n, _, err := recvPooled(rc)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Unix(0, f.last.Load()).Add(idle).After(deadline) {
					continue // the client sent something since: live on
				}
				return // idle, closed, or the target refuses (ICMP port unreachable)
			}
			f.last.Store(time.Now().UnixNano())
			_, err = pc.WriteToUDPAddrPort((*bp)[:n], client)
			bufPool.Put(bp)
			if errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
	flowOf := func(client netip.AddrPort) *udpFlow {
		mu.Lock()
		defer mu.Unlock()
		if f := flows[client]; f != nil {
			return f
		}
		if len(flows) >= maxUDPFlows {
			if !full {
				full = true
				log.Warn("proxy: too many UDP flows, dropping datagrams of new clients", "max", maxUDPFlows)
			}
			return nil
		}
		to, err := target()
		if err != nil {
			log.Debug("proxy: no target", "client", client, "err", err)
			return nil
		}
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		if err != nil {
			log.Debug("proxy dial", "client", client, "target", to, "err", err)
			return nil
		}
		f := &udpFlow{conn: c}
		f.last.Store(time.Now().UnixNano())
		flows[client] = f
		wg.Go(func() { replies(client, f) })
		return f
	}
	rc, err := pc.SyscallConn()
	if err != nil { // not for a *net.UDPConn that is open
		pc.Close()
		return func() {}
	}
	wg.Go(func() {
		for {
			bp, n, from, err := recvPooled(rc)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // a transient error of one datagram
			}
			if f := flowOf(addrPortOf(from)); f != nil {
				f.last.Store(time.Now().UnixNano())
				f.conn.Write((*bp)[:n]) // lost like any datagram if the target is gone
			}
			bufPool.Put(bp)
		}
	})
	return func() {
		pc.Close()
		mu.Lock()
		for _, f := range flows {
			f.conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// bufPool holds the buffers of UDP datagrams being relayed. A socket waiting for a
// datagram holds none (recvPooled), so 5,000 idle UDP proxies cost no 64 KiB each.
var bufPool = sync.Pool{New: func() any { b := make([]byte, udpBufSize); return &b }}

// recvPooled waits until rc has a datagram and reads it into a buffer from bufPool, which
// the caller puts back; on an error there is no buffer.
func recvPooled(rc syscall.RawConn) (bp *[]byte, n int, from unix.Sockaddr, err error) {
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		bp = bufPool.Get().(*[]byte)
		for {
			n, from, rerr = unix.Recvfrom(int(fd), *bp, unix.MSG_DONTWAIT)
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			bufPool.Put(bp)
			bp = nil
			return false // wait until readable
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if err != nil && bp != nil {
		bufPool.Put(bp)
		bp = nil
	}
	return bp, n, from, err
}

// addrPortOf is the address of a datagram's sender.
func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
