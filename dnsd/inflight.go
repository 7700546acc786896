package dnsd

import (
	"context"
	"time"
)

// Inflight slots: a forwarded query holds one of its sandbox's (MaxInflight) and one of
// the daemon's (MaxInflightTotal) until its answer is written, so neither a busy sandbox
// nor a slow upstream can make the daemon hold unbounded goroutines, sockets or entries.
// A query that finds no slot within QueueWait is REFUSED; local names take none.

// acquire takes an inflight slot of the sandbox (sem, or nil for none) and one of the
// daemon, waiting at most QueueWait for both.
func (s *Server) acquire(ctx context.Context, sem chan struct{}) (release func(), ok bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	take := func(c chan struct{}) bool {
		if c == nil {
			return true
		}
		select {
		case c <- struct{}{}:
			return true
		default:
		}
		if timer == nil {
			timer = time.NewTimer(s.cfg.QueueWait)
		}
		select {
		case c <- struct{}{}:
			return true
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	if !take(sem) {
		return nil, false
	}
	if !take(s.global) {
		if sem != nil {
			<-sem
		}
		return nil, false
	}
	return func() {
		<-s.global
		if sem != nil {
			<-sem
		}
	}, true
}

// tryAcquire takes an inflight slot of the sandbox and one of the daemon if both are free
// now (the UDP reader, which must not wait).
func (h *handler) tryAcquire() bool {
	select {
	case h.sem <- struct{}{}:
	default:
		return false
	}
	select {
	case h.s.global <- struct{}{}:
		return true
	default:
		<-h.sem
		return false
	}
}

// releaseSlots gives back what tryAcquire took.
func (h *handler) releaseSlots() {
	<-h.s.global
	<-h.sem
}

// logRefused warns about the inflight limit at most once per refusedLogEvery per sandbox.
func (h *handler) logRefused() {
	now := time.Now().UnixNano()
	last := h.lastRefusedLog.Load()
	if now-last < int64(refusedLogEvery) || !h.lastRefusedLog.CompareAndSwap(last, now) {
		return
	}
	h.s.cfg.Log.Warn("dns query refused: too many forwarded queries in flight", "sandbox", h.id,
		"limit", h.s.cfg.MaxInflight, "total_limit", h.s.cfg.MaxInflightTotal)
}
