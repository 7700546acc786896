package dnsd

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// loop waits on ep for replies and timeouts until the relay closes or ep fails; then it
// drains (see relayState).
func (r *relay) loop(ep *epoller, done chan struct{}) {
	defer close(done)
	buf := make([]byte, dns.MaxMsgSize) // an upstream ignoring EDNS may send more than asked (moby #44575)
	deadline := int64(math.MaxInt64)    // ep's, in relay time; deadlineExpired after it passed
	for {
		r.mu.Lock()
		if r.state != relayRunning {
			r.mu.Unlock()
			r.drain(ep, ErrClosed)
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
			ep.setDeadline(t)
		}
		events, err := ep.wait()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Go's poller fails every wait at once until the deadline is set again, even
			// to none: the loop would spin while no attempt is left.
			deadline = deadlineExpired
		case err != nil:
			// Not seen in practice (EBADF or EINVAL would be a bug here): what the loop
			// holds fails now rather than at its deadline, and the next query starts over.
			r.log.Error("dns forward relay failed; its queries get SERVFAIL, the next one starts it again", "err", err)
			r.drain(ep, err)
			return
		}
		for _, ev := range events {
			if ev.Fd != wakeData {
				r.readable(ev.Fd, ev.Pad, buf)
			}
		}
		r.expire()
	}
}

// deadlineExpired is the loop's note that ep's deadline has passed; no wakeAt equals it.
const deadlineExpired = -1

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
// ignored; an error (ICMP unreachable) moves on to the next upstream. It reads until the
// socket is empty; epoll reports it again if more arrives.
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

// drain ends the loop of ep: no attempt registers with ep from here on, and once those
// under way have, every attempt the loop holds fails with cause (no other upstream is
// tried), ep is closed, and the relay is idle (the next query starts a new loop) or
// closed.
func (r *relay) drain(ep *epoller, cause error) {
	r.mu.Lock()
	if r.state == relayRunning {
		r.state = relayDraining
	}
	for r.users > 0 {
		r.unused.Wait()
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
		e.fail(r, "", cause)
		e.next = len(e.ups)
		e.cache = nil // berth failed it, not the upstreams
		r.finish(e, nil)
	}
	ep.close()
	r.mu.Lock()
	if r.state == relayDraining {
		r.state = relayIdle
	}
	r.ep, r.wakeAt = nil, math.MaxInt64
	r.mu.Unlock()
}
