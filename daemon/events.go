package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"berth/api"
	"berth/internal/filters"
)

// Events: the daemon publishes one api.Event per change it made (and one "daemon restart"
// per start); `berth events` streams them like `docker events`. A small ring of past events
// lets --since replay what happened before the client connected, the daemon's start
// included.

const (
	eventRing      = 1024 // past events kept for --since
	eventSubBuffer = 256  // per subscriber; a subscriber that falls this far behind is dropped
)

type eventHub struct {
	mu   sync.Mutex // guards following
	ring []api.Event
	subs map[chan api.Event]struct{}
}

func newEventHub() *eventHub { return &eventHub{subs: map[chan api.Event]struct{}{}} }

// publish records ev and hands it to every subscriber without ever blocking the change
// that produced it.
func (h *eventHub) publish(ev api.Event) {
	ev.Time = time.Now().UTC()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ring) == eventRing {
		h.ring = append(h.ring[:0], h.ring[1:]...)
	}
	h.ring = append(h.ring, ev)
	for ch := range h.subs {
		select {
		case ch <- ev:
		default: // too slow: cut it off rather than stall the daemon
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// subscribe returns the kept events since t and a channel of the following ones; cancel
// must be called when done.
func (h *eventHub) subscribe(since time.Time) (past []api.Event, ch chan api.Event, cancel func()) {
	ch = make(chan api.Event, eventSubBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range h.ring {
		if !ev.Time.Before(since) {
			past = append(past, ev)
		}
	}
	h.subs[ch] = struct{}{}
	return past, ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// streamEvents serves GET /v1/events[?since=T][&until=T][&filters=JSON]: newline-delimited
// JSON of the events that match, until the client goes away or until has passed. since and
// until take what Docker's do (a duration ago, an RFC 3339 time, unix seconds). Without
// since, the stream starts now, or, with until, at the first kept event (as dockerd).
func (s *server) streamEvents(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	q := r.URL.Query()
	var since, until time.Time
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(p.name); v != "" {
			t, err := filters.Timestamp(v, now)
			if err != nil {
				writeError(w, &filterError{fmt.Sprintf("invalid %s %q: %v", p.name, v, err)})
				return
			}
			*p.t = t
		}
	}
	if !until.IsZero() && until.Before(since) {
		writeError(w, &filterError{fmt.Sprintf("`since` time (%s) cannot be after `until` time (%s)", q.Get("since"), q.Get("until"))})
		return
	}
	if since.IsZero() && until.IsZero() {
		since = now
	}
	args, err := queryFilters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	match, err := eventMatcher(args)
	if err != nil {
		writeError(w, err)
		return
	}
	past, ch, cancel := s.d.events.subscribe(since)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	// Each event is flushed as it is written: a reader sees it at once, not when the
	// server's buffer fills. ResponseController unwraps the logging recorder.
	rc := http.NewResponseController(w)
	flush := func() { _ = rc.Flush() }
	for _, ev := range past {
		if match(ev) && (until.IsZero() || !ev.Time.After(until)) {
			enc.Encode(ev)
		}
	}
	flush()
	// until ends the stream once it has passed (at once when it already has).
	var end <-chan time.Time
	if !until.IsZero() {
		timer := time.NewTimer(time.Until(until))
		defer timer.Stop()
		end = timer.C
	}
	for {
		select {
		case <-end:
			return
		case <-r.Context().Done():
			return
		case <-s.streams.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if !match(ev) {
				continue
			}
			if !until.IsZero() && ev.Time.After(until) {
				return
			}
			if enc.Encode(ev) != nil {
				return
			}
			flush()
		}
	}
}
