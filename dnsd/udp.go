package dnsd

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// udpServer serves one sandbox's UDP socket with a single reader goroutine, which takes
// the queued datagrams in batches (recvmmsg) and sends the batch's local answers together
// (sendmmsg, mmsg.go). Queries for names the resolver owns are answered inline from reused
// buffers (fast.go), with no goroutine, lock or allocation per query. Plain queries for
// other names go to the relay (relay.go) when an inflight slot is free at once; the relay
// answers the client itself.
// Everything else (malformed or unusual messages, debug logging, a full inflight limit)
// is copied and handed to a goroutine that takes the general path: miekg's header checks
// and unpacking, then handler.ServeDNS, whose forwarder holds the inflight slots (so the
// number of those goroutines is bounded as miekg's goroutine per packet would be: by the
// query rate times QueueWait, plus the forwards in flight).
//
// TCP is miekg's dns.Server (tcpconn.go): clients use it for the rare truncated answer.
type udpServer struct {
	h     *handler
	conn  *net.UDPConn // good until stop
	local net.Addr     // conn's address, for the general path's ResponseWriter
	wg    sync.WaitGroup
	done  chan struct{} // closed by stop
}

func newUDPServer(h *handler, conn *net.UDPConn) *udpServer {
	u := &udpServer{h: h, conn: conn, local: conn.LocalAddr(), done: make(chan struct{})}
	u.wg.Add(1)
	go u.read()
	return u
}

// stop closes the socket and waits up to wait for the reader and general-path goroutines.
func (u *udpServer) stop(wait time.Duration) {
	close(u.done)
	_ = u.conn.Close()
	done := make(chan struct{})
	go func() { u.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// minQuery is the DNS header size: shorter datagrams get no reply (miekg drops them too:
// any reply to noise can be used for amplification).
const minQuery = 12

// readBatch is how many datagrams one recvmmsg takes at most, and how many replies one
// sendmmsg sends. Under load a socket holds many queries (a stub resolver sends A and AAAA
// together; a busy sandbox more): taking them in one system call each way costs less than
// a recvfrom and a sendto per query. With one datagram waiting it is one of each.
const readBatch = 16

// maxReadBackoff bounds the wait between reads that fail in a row.
const maxReadBackoff = time.Second

// read is the reader loop. It owns the buffers and the fast path's scratch space.
//
// It starts with room for one datagram and doubles it, up to readBatch, whenever a read
// fills all it has: a read buffer is udpReadSize, and most sandboxes, idle or with one
// client, never need more than one (a thousand idle sandboxes would otherwise hold 64 MiB).
func (u *udpServer) read() {
	defer u.wg.Done()
	mc, err := newMmsgConn(u.conn, readBatch)
	if err != nil {
		u.h.s.cfg.Log.Error("dns udp reader", "sandbox", u.h.id, "err", err)
		return
	}
	in := make([][]byte, 0, readBatch)
	addBuffers := func(n int) {
		for len(in) < n {
			in = append(in, make([]byte, udpReadSize))
		}
	}
	addBuffers(1)
	var (
		lens    [readBatch]int
		froms   [readBatch]netip.AddrPort
		replies [readBatch][]byte // the k-th answer (the fast path reuses one scratch), grown on use
		to      [readBatch]netip.AddrPort
		starts  [readBatch]time.Time
		qtypes  [readBatch]uint16
		srcs    [readBatch]source
		sc      scratch
		backoff time.Duration // after read errors in a row: doubled per error, up to maxReadBackoff
	)
	for {
		n, err := mc.read(in, lens[:], froms[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (no ICMP errors on an unconnected socket, so rare). Reading again
			// at once would spin on an error that persists: back off, as net/http's Serve
			// does after a failed Accept.
			backoff = min(max(2*backoff, time.Millisecond), maxReadBackoff)
			u.h.s.cfg.Log.Warn("dns udp read", "sandbox", u.h.id, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-u.done:
				return
			}
			continue
		}
		backoff = 0
		k := 0 // answers in this batch
		for i := range n {
			pkt, from := in[i][:lens[i]], froms[i]
			if len(pkt) < minQuery {
				u.h.s.metrics.dropped()
				continue
			}
			start := time.Now()
			reply, v, q := u.h.classify(pkt, &sc)
			switch v {
			case answered:
				replies[k] = append(replies[k][:0], reply...)
				to[k], starts[k], qtypes[k], srcs[k] = from, start, q.qtype, srcLocal
				k++
				continue
			case toRelay:
				ups := u.h.upstreams(u.h.s.cfg.Store.Snapshot()) // one lookup for the cache and the relay
				if reply, ok := u.h.fromCache(ups, pkt, q, replies[k][:0]); ok {
					replies[k] = reply // kept: the buffer grows once
					to[k], starts[k], qtypes[k], srcs[k] = from, start, q.qtype, srcCached
					k++
					continue
				}
				if u.forward(pkt, q, from, ups) {
					continue
				}
			}
			pkt = append([]byte(nil), pkt...)
			u.wg.Add(1) // the reader's own count is held, so this never races with Wait at zero
			go u.general(pkt, from)
		}
		u.send(mc, replies[:k], to[:k])
		done := time.Now()
		for i := range k {
			u.h.s.metrics.answered(qtypes[i], int(replies[i][3]&0xF), srcs[i], done.Sub(starts[i]))
		}
		if n == len(in) && n < readBatch {
			addBuffers(min(2*n, readBatch)) // more were probably waiting
		}
	}
}

// send writes the replies with as few sendmmsg calls as the kernel allows. A reply the
// kernel refuses (a full socket buffer, rare on loopback) is dropped, as a failed sendto
// would drop it: the client retries.
func (u *udpServer) send(mc *mmsgConn, replies [][]byte, to []netip.AddrPort) {
	for len(replies) > 0 {
		n, err := mc.write(replies, to)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			u.h.s.cfg.Log.Debug("dns udp write", "sandbox", u.h.id, "err", err)
			n = max(n, 1) // skip the one that failed
		}
		replies, to = replies[n:], to[n:]
	}
}

// forward hands a query for a name resolver does not own to the relay, which sends it to
// ups (the sandbox's upstreams, looked up once for the cache and this) and answers the
// client itself. false leaves it to the general path: no inflight slot free right now (it
// waits there up to QueueWait, then REFUSED), no upstream (SERVFAIL), or the server closed.
func (u *udpServer) forward(pkt []byte, q fastQuery, from netip.AddrPort, ups *upsCache) bool {
	h := u.h
	if !h.tryAcquire() {
		return false
	}
	var e *fwdEntry
	if len(ups.ups) > 0 {
		e, _ = h.s.relay.get(h, pkt, q, ups.ups, ups.nsPath) // an error is the general path's to report
	}
	if e == nil {
		h.releaseSlots()
		return false
	}
	if ups.set != "" {
		e.cache = ups // the reply goes into the forward cache
	}
	h.s.relay.send(e, u.conn, from)
	return true
}

// general answers one datagram as miekg's dns.Server would: responses ignored, unknown
// opcodes NOTIMP, bad section counts or a message that does not unpack FORMERR, the rest
// through handler.ServeDNS (which recovers its own panics).
func (u *udpServer) general(pkt []byte, from netip.AddrPort) {
	defer u.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			u.h.s.cfg.Log.Error("dns udp panic", "sandbox", u.h.id, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	w := &udpWriter{conn: u.conn, local: u.local, to: from}
	req, action := acceptMsg(pkt, w)
	switch {
	case req != nil:
		u.h.ServeDNS(w, req)
	case action == dns.MsgIgnore:
		u.h.s.metrics.dropped()
	case action == dns.MsgRejectNotImplemented:
		u.h.s.metrics.answered(0, dns.RcodeNotImplemented, srcMalformed, 0)
	default:
		u.h.s.metrics.answered(0, dns.RcodeFormatError, srcMalformed, 0)
	}
}

// acceptMsg applies miekg's DefaultMsgAcceptFunc and unpacks pkt (at least minQuery
// bytes), and says what it did: MsgAccept with the message, or MsgIgnore, MsgReject or
// MsgRejectNotImplemented with nil. Rejected messages are answered here. This mirrors
// dns.Server.serveDNS (miekg/dns v1.1), which is not exported.
func acceptMsg(pkt []byte, w dns.ResponseWriter) (*dns.Msg, dns.MsgAcceptAction) {
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(pkt[0:]),
		Bits:    binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]),
		Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]),
		Arcount: binary.BigEndian.Uint16(pkt[10:]),
	}
	req := new(dns.Msg)
	setHeader(req, dh)
	action := dns.DefaultMsgAcceptFunc(dh)
	switch action {
	case dns.MsgAccept:
		if err := req.Unpack(pkt); err == nil {
			return req, action
		}
		action = dns.MsgReject
	case dns.MsgIgnore:
		return nil, action
	}
	opcode := req.Opcode
	req.SetRcodeFormatError(req)
	req.Zero = false
	if action == dns.MsgRejectNotImplemented {
		req.Opcode = opcode
		req.Rcode = dns.RcodeNotImplemented
	}
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	_ = w.WriteMsg(req)
	return nil, action
}

// setHeader is miekg's unexported Msg.setHdr.
func setHeader(m *dns.Msg, dh dns.Header) {
	m.Id = dh.Id
	m.Response = dh.Bits&flagQR != 0
	m.Opcode = int(dh.Bits>>11) & 0xF
	m.Authoritative = dh.Bits&flagAA != 0
	m.Truncated = dh.Bits&flagTC != 0
	m.RecursionDesired = dh.Bits&flagRD != 0
	m.RecursionAvailable = dh.Bits&flagRA != 0
	m.Zero = dh.Bits&flagZ != 0
	m.AuthenticatedData = dh.Bits&flagAD != 0
	m.CheckingDisabled = dh.Bits&flagCD != 0
	m.Rcode = int(dh.Bits & 0xF)
}

// Header flag bits (RFC 1035 4.1.1, RFC 4035 3.2).
const (
	flagQR uint16 = 1 << 15
	flagAA uint16 = 1 << 10
	flagTC uint16 = 1 << 9
	flagRD uint16 = 1 << 8
	flagRA uint16 = 1 << 7
	flagZ  uint16 = 1 << 6
	flagAD uint16 = 1 << 5
	flagCD uint16 = 1 << 4
)

// udpWriter is the dns.ResponseWriter of one datagram on the general path.
type udpWriter struct {
	conn  *net.UDPConn
	local net.Addr // a *net.UDPAddr: the handler tells UDP from TCP by it
	to    netip.AddrPort
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.local }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.to) }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *udpWriter) Write(b []byte) (int, error) { return w.conn.WriteToUDPAddrPort(b, w.to) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}
