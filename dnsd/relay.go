package dnsd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"berth/resolver"
)

// relay sends forwarded UDP queries upstream and relays the replies, for every sandbox of
// a Server, without a goroutine or a net.Conn per query: each attempt is a fresh connected
// non-blocking socket (a fresh random source port) registered with one epoll instance, and
// one goroutine (loop) reads the replies, checks them, fails over and times out. Per
// attempt that is socket, connect, send, epoll_ctl, recv and close, against about twice as
// many syscalls, a goroutine and a dozen allocations through net.Dialer.
//
// A query reaches the relay from a sandbox's UDP reader (the reply goes straight to the
// client's socket, see udpServer) or from a goroutine that waits (forwarder.exchange: the
// general path and Explain). Either way it already holds its inflight slots, so the
// number of entries is bounded by MaxInflightTotal.
//
// Only the loop closes attempt sockets, so an fd is never closed twice or reused under
// another entry. An entry belongs to whoever starts an attempt until its socket is added to
// epoll, and to the loop after that.
type relay struct {
	timeout  time.Duration // one attempt
	deadline time.Duration // all attempts of one query
	metrics  *Metrics
	base     time.Time // monotonic origin of entry times

	startOnce sync.Once
	startErr  error
	epfd      int             // good after start
	epoll     *os.File        // epfd, registered with Go's poller so loop parks as a goroutine
	rawEpoll  syscall.RawConn // epoll's
	evfd      int             // eventfd that wakes loop; good after start
	done      chan struct{}   // closed when loop has exited

	mu      sync.Mutex // guards following
	entries []*fwdEntry
	free    []int32
	timers  timerHeap
	wakeAt  int64 // when loop wakes on its own; math.MaxInt64 while it waits for events only
	adding  int   // attempts between taking an fd and adding it to epoll
	closing bool
}

// wakeData marks the eventfd in epoll events (entries use their index, from 0).
const wakeData = -1

// fwdEntry is one forwarded query.
type fwdEntry struct {
	idx  int32 // in relay.entries
	seq  int32 // bumped per attempt and per reuse: tells stale events apart
	hidx int   // in relay.timers, or -1

	h        *handler
	ups      []resolver.Upstream // not modified
	nsPath   string              // for upstreams dialled in the sandbox
	next     int                 // the upstream tried now
	fd       int                 // the attempt's socket, or -1
	id       uint16              // the attempt's query ID
	query    []byte              // the client's query; bytes 0-1 rewritten per attempt
	q        fastQuery           // its question end, type, EDNS
	clientID uint16
	start    int64 // relay time of the forward's start

	// Where the outcome goes: a UDP client (conn, to), or a goroutine waiting on wait.
	conn *net.UDPConn
	to   netip.AddrPort
	wait chan fwdResult // buffered
	errs []error        // why upstreams failed, for wait only
}

// fwdResult is the outcome of a waited-for forward.
type fwdResult struct {
	raw      []byte // the reply with the client's ID, or nil
	upstream string // who sent it
	err      error  // why no upstream answered
}

func newRelay(timeout, deadline time.Duration, m *Metrics) *relay {
	return &relay{timeout: timeout, deadline: deadline, metrics: m, base: time.Now(), wakeAt: math.MaxInt64, done: make(chan struct{})}
}

func (r *relay) now() int64 { return int64(time.Since(r.base)) }

// start creates the epoll instance and the loop on first use.
func (r *relay) start() error {
	r.startOnce.Do(func() {
		r.mu.Lock()
		closing := r.closing
		r.mu.Unlock()
		if closing {
			r.startErr = ErrClosed
			return
		}
		var err error
		if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			r.startErr = fmt.Errorf("epoll: %w", err)
			return
		}
		// An epoll fd is itself pollable: with O_NONBLOCK, os.NewFile adds it to Go's
		// poller, and loop waits for it as a parked goroutine, not as a thread blocked in
		// epoll_wait (which would cost a thread switch per wake-up).
		if err := unix.SetNonblock(r.epfd, true); err != nil {
			unix.Close(r.epfd)
			r.startErr = fmt.Errorf("epoll: %w", err)
			return
		}
		r.epoll = os.NewFile(uintptr(r.epfd), "dnsd-relay-epoll")
		if r.rawEpoll, err = r.epoll.SyscallConn(); err != nil {
			r.epoll.Close()
			r.startErr = fmt.Errorf("epoll: %w", err)
			return
		}
		if r.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			r.epoll.Close()
			r.startErr = fmt.Errorf("eventfd: %w", err)
			return
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeData}
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, r.evfd, &ev); err != nil {
			r.epoll.Close()
			unix.Close(r.evfd)
			r.startErr = fmt.Errorf("epoll add: %w", err)
			return
		}
		go r.loop()
	})
	return r.startErr
}

// close stops the loop; waiting forwards get ErrClosed, later ones fail.
func (r *relay) close() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.startOnce.Do(func() { r.startErr = ErrClosed })
	if r.startErr != nil {
		return
	}
	r.wake()
	<-r.done
}

func (r *relay) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(r.evfd, one[:])
}

// get returns a free entry with query copied in, or nil when the relay is closed.
func (r *relay) get(h *handler, query []byte, q fastQuery, ups []resolver.Upstream, nsPath string) *fwdEntry {
	if r.start() != nil {
		return nil
	}
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return nil
	}
	var e *fwdEntry
	if n := len(r.free); n > 0 {
		e = r.entries[r.free[n-1]]
		r.free = r.free[:n-1]
	} else {
		e = &fwdEntry{idx: int32(len(r.entries)), hidx: -1}
		r.entries = append(r.entries, e)
	}
	e.seq++
	e.fd = -1
	r.mu.Unlock()
	e.h, e.ups, e.nsPath, e.next, e.q = h, ups, nsPath, 0, q
	e.query = append(e.query[:0], query...)
	e.clientID = binary.BigEndian.Uint16(query)
	e.start = r.now()
	e.conn, e.to, e.wait, e.errs = nil, netip.AddrPort{}, nil, nil
	return e
}

// send starts e towards its client conn (the reader path).
func (r *relay) send(e *fwdEntry, conn *net.UDPConn, to netip.AddrPort) {
	e.conn, e.to = conn, to
	r.attempt(e)
}

// exchange runs e and waits for its outcome or ctx.
func (r *relay) exchange(ctx context.Context, e *fwdEntry) fwdResult {
	wait := make(chan fwdResult, 1)
	e.wait = wait
	r.attempt(e)
	select {
	case res := <-wait:
		return res
	case <-ctx.Done():
		return fwdResult{err: ctx.Err()} // the entry times out on its own
	}
}

// attempt sends e to its upstreams from e.next on until one send succeeds, and finishes
// e when none is left.
func (r *relay) attempt(e *fwdEntry) {
	for ; e.next < len(e.ups); e.next++ {
		if err := e.h.ctx.Err(); err != nil {
			e.fail(r, "not tried", err)
			break
		}
		if r.now()-e.start >= int64(r.deadline) {
			e.fail(r, "not tried", context.DeadlineExceeded)
			break
		}
		up := e.ups[e.next]
		fd, err := e.h.socket(up, e.nsPath)
		if err != nil {
			r.metrics.upstreamError(up.Addr, upErrNetwork)
			e.fail(r, "", err)
			continue
		}
		id := uint16(rand.Uint32())
		binary.BigEndian.PutUint16(e.query, id)
		if _, err := unix.Write(fd, e.query); err != nil {
			unix.Close(fd)
			r.metrics.upstreamError(up.Addr, upErrNetwork)
			e.fail(r, "", err)
			continue
		}
		r.mu.Lock()
		if r.closing {
			r.mu.Unlock()
			unix.Close(fd)
			e.fail(r, "", ErrClosed)
			break
		}
		e.fd, e.id = fd, id
		e.seq++
		idx, seq, at := e.idx, e.seq, min(r.now()+int64(r.timeout), e.start+int64(r.deadline))
		r.adding++
		r.mu.Unlock()
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: idx, Pad: seq}
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(fd)
			r.mu.Lock()
			e.fd = -1
			r.adding--
			r.mu.Unlock()
			e.fail(r, "", fmt.Errorf("epoll add: %w", err))
			continue
		}
		// From here on e belongs to loop, which may already have finished the attempt:
		// only idx, seq and at are used.
		r.mu.Lock()
		r.adding--
		wake := false
		if e := r.entries[idx]; e.seq == seq {
			r.timers.push(r.entries, timer{at: at, idx: idx})
			if wake = at < r.wakeAt; wake {
				r.wakeAt = at
			}
		}
		r.mu.Unlock()
		if wake {
			r.wake()
		}
		return
	}
	r.finish(e, nil)
}

// fail notes why the current upstream gave nothing (for waiters: the error of Explain).
func (e *fwdEntry) fail(r *relay, prefix string, err error) {
	if e.wait == nil {
		return
	}
	if e.next >= len(e.ups) {
		return
	}
	name := upstreamName(e.ups[e.next])
	if prefix != "" {
		e.errs = append(e.errs, fmt.Errorf("%s: %s: %w", name, prefix, err))
	} else {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", name, err))
	}
}

// upstreamName is how logs and `berth dns query` name an upstream.
func upstreamName(up resolver.Upstream) string {
	if up.HostNS {
		return up.Addr.String() + " (host netns)"
	}
	return up.Addr.String() + " (sandbox netns)"
}

// finish delivers reply (the upstream's, client ID restored) or, when nil, a SERVFAIL,
// and frees e.
func (r *relay) finish(e *fwdEntry, reply []byte) {
	rcode := dns.RcodeServerFailure
	if reply != nil {
		rcode = int(reply[3] & 0xF)
	}
	switch {
	case e.wait != nil:
		res := fwdResult{}
		if reply != nil {
			res.raw = append([]byte(nil), reply...)
			res.upstream = upstreamName(e.ups[e.next])
		} else if res.err = errors.Join(e.errs...); res.err == nil {
			res.err = errNoUpstreams
		}
		e.wait <- res
	default:
		src := srcForwarded
		if reply == nil {
			src = srcServfail
			binary.BigEndian.PutUint16(e.query, e.clientID) // attempts rewrote it
			reply = appendFailure(nil, e.query, e.q, dns.RcodeServerFailure)
		}
		_, _ = e.conn.WriteToUDPAddrPort(reply, e.to)
		r.metrics.answered(e.q.qtype, rcode, src, time.Duration(r.now()-e.start))
		e.h.releaseSlots()
	}
	r.mu.Lock()
	e.seq++
	e.h, e.ups, e.conn, e.wait, e.errs = nil, nil, nil, nil, nil
	r.free = append(r.free, e.idx)
	r.mu.Unlock()
}

// loop waits for replies and timeouts.
func (r *relay) loop() {
	defer close(r.done)
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, dns.MaxMsgSize) // an upstream ignoring EDNS may send more than asked (moby #44575)
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		return n != 0 || werr != nil // nothing ready: park until Go's poller says there is
	}
	deadline := int64(math.MaxInt64)
	for {
		r.mu.Lock()
		if r.closing {
			r.mu.Unlock()
			r.shutdown()
			return
		}
		r.wakeAt = math.MaxInt64
		if len(r.timers) > 0 {
			r.wakeAt = r.timers[0].at
		}
		wakeAt := r.wakeAt
		r.mu.Unlock()
		if wakeAt != deadline {
			deadline = wakeAt
			t := time.Time{}
			if deadline != math.MaxInt64 {
				t = r.base.Add(time.Duration(deadline))
			}
			_ = r.epoll.SetReadDeadline(t)
		}
		n, werr = 0, nil
		err := r.rawEpoll.Read(wait)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			deadline = math.MaxInt64 // set it again even if unchanged
		case err != nil:
			panic(fmt.Sprintf("dnsd relay: wait for epoll: %v", err)) // only Close ends it, after loop
		case werr != nil && !errors.Is(werr, unix.EINTR):
			panic(fmt.Sprintf("dnsd relay: epoll_wait: %v", werr)) // EBADF, EINVAL: a bug
		}
		for i := range max(n, 0) {
			ev := events[i]
			if ev.Fd == wakeData {
				var b [8]byte
				_, _ = unix.Read(r.evfd, b[:])
				continue
			}
			r.readable(ev.Fd, ev.Pad, buf)
		}
		r.expire()
	}
}

// current returns the entry at idx if its attempt seq is still running.
func (r *relay) current(idx, seq int32) *fwdEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[idx]; e.seq == seq && e.fd >= 0 {
		return e
	}
	return nil
}

// readable reads what arrived for an attempt: the matching reply ends it, anything else is
// ignored; an error (ICMP unreachable) moves on to the next upstream.
func (r *relay) readable(idx, seq int32, buf []byte) {
	e := r.current(idx, seq)
	if e == nil {
		return
	}
	for {
		n, err := unix.Read(e.fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return
		}
		if err != nil {
			r.metrics.upstreamError(e.ups[e.next].Addr, upErrNetwork)
			r.retry(e, err)
			return
		}
		reply := buf[:n]
		// The socket is connected, so the kernel has already dropped datagrams from any
		// other address or port; what is left to check is the ID and question.
		if !replyMatches(reply, e.id, e.query[:e.q.qend]) {
			r.metrics.upstreamMismatched(e.ups[e.next].Addr)
			continue // a late or forged datagram: keep waiting for the real one
		}
		switch rc := reply[3] & 0xF; rc {
		case dns.RcodeServerFailure, dns.RcodeRefused:
			r.metrics.upstreamError(e.ups[e.next].Addr, upErrRcode(int(rc)))
			r.retry(e, errors.New(rcodeName(int(rc))))
		default:
			r.closeAttempt(e)
			binary.BigEndian.PutUint16(reply, e.clientID)
			r.finish(e, reply)
		}
		return
	}
}

// closeAttempt closes the socket of e's attempt (which takes it out of epoll).
func (r *relay) closeAttempt(e *fwdEntry) {
	unix.Close(e.fd)
	r.mu.Lock()
	e.fd = -1
	e.seq++
	if e.hidx >= 0 {
		r.timers.remove(r.entries, e.hidx)
	}
	r.mu.Unlock()
}

// retry ends the current attempt with err and tries the next upstream.
func (r *relay) retry(e *fwdEntry, err error) {
	r.closeAttempt(e)
	e.fail(r, "", err)
	e.next++
	r.attempt(e)
}

// expire ends attempts past their time.
func (r *relay) expire() {
	now := r.now()
	var due []*fwdEntry
	r.mu.Lock()
	for len(r.timers) > 0 && r.timers[0].at <= now {
		due = append(due, r.entries[r.timers[0].idx])
		r.timers.remove(r.entries, 0)
	}
	r.mu.Unlock()
	for _, e := range due {
		r.metrics.upstreamTimeout(e.ups[e.next].Addr)
		r.retry(e, errTimeout)
	}
}

var errTimeout = errors.New("i/o timeout")

// shutdown ends every running attempt when the relay closes.
func (r *relay) shutdown() {
	r.mu.Lock()
	for r.adding > 0 { // closing is set: no attempt starts after these
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
		r.mu.Lock()
	}
	var running []*fwdEntry
	for _, e := range r.entries {
		if e.fd >= 0 {
			running = append(running, e)
		}
	}
	r.mu.Unlock()
	for _, e := range running {
		r.closeAttempt(e)
		e.fail(r, "", ErrClosed)
		e.next = len(e.ups)
		r.finish(e, nil)
	}
	r.epoll.Close()
	unix.Close(r.evfd)
}

// timer is when the attempt of entry idx times out.
type timer struct {
	at  int64
	idx int32
}

// timerHeap is a binary min-heap on at that keeps each entry's position (hidx) so a
// finished attempt's timer is removed at once rather than left to fire.
type timerHeap []timer

func (h *timerHeap) push(es []*fwdEntry, t timer) {
	*h = append(*h, t)
	h.up(es, len(*h)-1)
}

// remove takes out the timer at i.
func (h *timerHeap) remove(es []*fwdEntry, i int) {
	s := *h
	n := len(s) - 1
	es[s[i].idx].hidx = -1
	if i != n {
		s[i] = s[n]
		es[s[i].idx].hidx = i
	}
	*h = s[:n]
	if i != n {
		h.down(es, i)
		h.up(es, i)
	}
}

func (h timerHeap) swap(es []*fwdEntry, i, j int) {
	h[i], h[j] = h[j], h[i]
	es[h[i].idx].hidx = i
	es[h[j].idx].hidx = j
}

func (h timerHeap) up(es []*fwdEntry, i int) {
	es[h[i].idx].hidx = i
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			break
		}
		h.swap(es, p, i)
		i = p
	}
}

func (h timerHeap) down(es []*fwdEntry, i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h[c+1].at < h[c].at {
			c++
		}
		if h[i].at <= h[c].at {
			return
		}
		h.swap(es, i, c)
		i = c
	}
}
