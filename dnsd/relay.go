package dnsd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"berth/resolver"
)

// relay sends forwarded UDP queries upstream and relays the replies, for every sandbox of
// a Server, without a goroutine or a net.Conn per query: each attempt is a fresh connected
// non-blocking socket (a fresh random source port) registered with one epoll instance, and
// one goroutine (loop, relayloop.go) reads the replies, checks them, fails over and times
// out. Per attempt that is socket, connect, send, epoll_ctl, recv and close, against about
// twice as many syscalls, a goroutine and a dozen allocations through net.Dialer.
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
	log      *slog.Logger
	base     time.Time // monotonic origin of entry times

	mu      sync.Mutex // guards following
	state   relayState
	ep      *epoller      // the running loop's; or nil when idle or closed
	done    chan struct{} // closed when that loop has exited
	users   int           // goroutines using ep outside mu (an attempt registering, a wake-up)
	unused  sync.Cond     // on mu: users dropped to zero while the loop drains
	entries []*fwdEntry
	free    []int32
	timers  timerHeap
	wakeAt  int64 // when loop wakes on its own; math.MaxInt64 while it waits for events only
}

// relayState is where the relay's loop stands. Only a running loop takes attempts.
//
//	idle ──a query──► running ──epoll fails──► draining ──► idle
//	  └──────────────────┴─────────close──────────┴───────► closed
//
// A loop drains when epoll fails or the relay closes: every attempt it holds fails (its
// query gets SERVFAIL), and the next query starts a new loop on a new epoll instance.
type relayState uint8

const (
	relayIdle     relayState = iota // no loop: not used yet, or the last one failed
	relayRunning                    // a loop waits on ep
	relayDraining                   // the loop is failing its attempts; a new one starts after
	relayClosed                     // for good; a running loop drains first
)

// errRelayDown fails a forward that arrives while the relay's loop drains after an epoll
// failure; the next one starts a new loop.
var errRelayDown = errors.New("forward relay restarting after an epoll failure")

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
	start    int64     // relay time of the forward's start
	cache    *upsCache // where the reply goes into the forward cache (the reader path); or nil

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

func newRelay(timeout, deadline time.Duration, m *Metrics, log *slog.Logger) *relay {
	r := &relay{timeout: timeout, deadline: deadline, metrics: m, log: log, base: time.Now(), wakeAt: math.MaxInt64}
	r.unused.L = &r.mu
	return r
}

func (r *relay) now() int64 { return int64(time.Since(r.base)) }

// startLocked starts a loop on a new epoll instance if none runs. r.mu is held.
func (r *relay) startLocked() error {
	switch r.state {
	case relayRunning:
		return nil
	case relayClosed:
		return ErrClosed
	case relayDraining:
		return errRelayDown
	}
	ep, err := newEpoller()
	if err != nil {
		return err // the next query tries again
	}
	r.state, r.ep, r.done = relayRunning, ep, make(chan struct{})
	r.wakeAt = math.MaxInt64
	go r.loop(ep, r.done)
	return nil
}

// close stops the loop; waiting forwards get ErrClosed, later ones fail.
func (r *relay) close() {
	r.mu.Lock()
	r.state = relayClosed
	ep, done := r.ep, r.done
	if ep != nil {
		r.users++
	}
	r.mu.Unlock()
	if ep == nil {
		return
	}
	ep.wake()
	r.mu.Lock()
	r.releaseLocked()
	r.mu.Unlock()
	<-done
}

// releaseLocked ends one use of r.ep outside r.mu, letting a draining loop go on once
// none is left. r.mu is held.
func (r *relay) releaseLocked() {
	if r.users--; r.users == 0 && r.state != relayRunning {
		r.unused.Broadcast()
	}
}

// get returns a free entry with query copied in, starting the loop if none runs. It fails
// when the relay is closed or its loop cannot run now.
func (r *relay) get(h *handler, query []byte, q fastQuery, ups []resolver.Upstream, nsPath string) (*fwdEntry, error) {
	r.mu.Lock()
	if err := r.startLocked(); err != nil {
		r.mu.Unlock()
		return nil, err
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
	e.conn, e.to, e.wait, e.errs, e.cache = nil, netip.AddrPort{}, nil, nil, nil
	return e, nil
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
		if r.state != relayRunning {
			err := ErrClosed
			if r.state != relayClosed {
				err = errRelayDown
			}
			r.mu.Unlock()
			unix.Close(fd)
			e.fail(r, "", err)
			e.cache = nil // berth failed it, not the upstreams
			break
		}
		ep := r.ep
		e.fd, e.id = fd, id
		e.seq++
		idx, seq, at := e.idx, e.seq, min(r.now()+int64(r.timeout), e.start+int64(r.deadline))
		r.users++
		r.mu.Unlock()
		if err := ep.add(fd, idx, seq); err != nil {
			unix.Close(fd)
			r.mu.Lock()
			e.fd = -1
			r.releaseLocked()
			r.mu.Unlock()
			e.fail(r, "", err)
			continue
		}
		// From here on e belongs to loop, which may already have finished the attempt:
		// only idx, seq and at are used. ep stays open while this is one of its users.
		r.mu.Lock()
		wake := false
		if e := r.entries[idx]; e.seq == seq {
			r.timers.push(r.entries, timer{at: at, idx: idx})
			if wake = at < r.wakeAt; wake {
				r.wakeAt = at
			}
		}
		if !wake {
			r.releaseLocked()
		}
		r.mu.Unlock()
		if wake {
			ep.wake()
			r.mu.Lock()
			r.releaseLocked()
			r.mu.Unlock()
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
		binary.BigEndian.PutUint16(e.query, e.clientID) // attempts rewrote it
		up := ""
		if reply == nil {
			src = srcServfail
			reply = appendFailure(nil, e.query, e.q, dns.RcodeServerFailure)
			if e.h.ctx.Err() != nil {
				e.cache = nil // the server stopped it, no upstream failed it
			}
		} else if e.cache != nil {
			up = e.cache.names[e.next]
		}
		if e.cache != nil {
			// Before the client has it: its next query (a stub's retry, the AAAA after
			// the A) must find it; after, it raced the put and went upstream again.
			e.h.s.cachePut(e.cache, e.query, reply, up)
		}
		_, _ = e.conn.WriteToUDPAddrPort(reply, e.to)
		r.metrics.answered(e.q.qtype, rcode, src, time.Duration(r.now()-e.start))
		e.h.releaseSlots()
	}
	r.mu.Lock()
	e.seq++
	e.h, e.ups, e.conn, e.wait, e.errs, e.cache = nil, nil, nil, nil, nil, nil
	r.free = append(r.free, e.idx)
	r.mu.Unlock()
}
