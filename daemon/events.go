package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"berth/api"
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

// streamEvents serves GET /v1/events[?since=RFC3339]: newline-delimited JSON until the
// client goes away.
func (s *server) streamEvents(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, &requestError{fmt.Sprintf("since %q is not an RFC 3339 time", v)})
			return
		}
		since = t
	} else {
		since = time.Now().UTC()
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
		enc.Encode(ev)
	}
	flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streams.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(ev) != nil {
				return
			}
			flush()
		}
	}
}
