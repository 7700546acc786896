package dockerapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"berth/api"
	"berth/internal/filters"
)

// GET /events: berth's events as Docker's. A sandbox is a container: its create, rm and
// rename are container create, destroy and rename; its connect and disconnect are, as in
// Docker, network events whose actor is the network and whose container attribute is the
// sandbox. Daemon restarts have no Docker counterpart and are left out.
//
// The filters apply to Docker's messages with dockerd's rules (daemon/events/filter.go),
// not to berth's events: Docker files connect under type network, berth under sandbox, so
// berth's event matcher cannot say what `--filter type=network` means to a Docker client.

// toMessage is ev as Docker's message; false for an event Docker has no word for.
func toMessage(ev api.Event) (message, bool) {
	m := message{Type: ev.Type, Action: ev.Action, Scope: "local",
		Time: ev.Time.Unix(), TimeNano: ev.Time.UnixNano()}
	driver := ev.Driver
	if driver == "" {
		driver = "bridge"
	}
	switch {
	case ev.Type == "network" && (ev.Action == "create" || ev.Action == "rm"):
		if ev.Action == "rm" {
			m.Action = "destroy"
		}
		m.Actor = actor{ID: ev.ID, Attributes: map[string]string{"name": ev.Name, "type": driver}}
	case ev.Type == "sandbox" && (ev.Action == "connect" || ev.Action == "disconnect"):
		m.Type = "network"
		m.Actor = actor{ID: ev.NetworkID, Attributes: map[string]string{"container": ev.ID, "name": ev.Network, "type": driver}}
	case ev.Type == "sandbox" && (ev.Action == "create" || ev.Action == "rm" || ev.Action == "rename"):
		m.Type = "container"
		attrs := map[string]string{"name": ev.Name}
		switch ev.Action {
		case "rm":
			m.Action = "destroy"
		case "rename":
			attrs["oldName"] = "/" + ev.OldName // dockerd's container names keep their "/"
		}
		m.Actor = actor{ID: ev.ID, Attributes: attrs}
		m.Status, m.ID = m.Action, ev.ID // the pre-1.22 fields dockerd still sends for containers
	default:
		return message{}, false
	}
	return m, true
}

// nameKeys are the filter keys dockerd matches against every event's actor ID (as a
// prefix) or name, whatever the event's type (fuzzyMatchName).
var nameKeys = []string{"container", "network", "daemon", "plugin", "volume", "service", "node", "secret", "config"}

// include is dockerd's events.Filter.Include for the keys berth's messages can match.
func include(args filters.Args, m message) bool {
	if !args.ExactMatch("event", m.Action) || !args.ExactMatch("type", m.Type) {
		return false
	}
	if args.Contains("scope") && !args.ExactMatch("scope", m.Scope) {
		return false
	}
	for _, key := range nameKeys {
		if !args.FuzzyMatch(key, m.Actor.ID) && !args.FuzzyMatch(key, m.Actor.Attributes["name"]) {
			return false
		}
	}
	// berth's events carry no image: an image filter matches none, as for a network in dockerd.
	if !args.ExactMatch("image", m.Actor.Attributes["image"]) {
		return false
	}
	return !args.Contains("label") || args.MatchKVList("label", m.Actor.Attributes)
}

// eventTime parses since and until as docker's clients send them (unix seconds with
// optional nanoseconds, "1700000000.000000123"), with the parser of berth's own CLI, which
// also takes an RFC 3339 time or a duration ago, for curl users. Zero time for "".
func eventTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := filters.Timestamp(v, time.Now())
	if err != nil {
		return time.Time{}, badRequest("invalid %s %q: want unix seconds[.nanoseconds], an RFC 3339 time or a duration", field, v)
	}
	return t, nil
}

// events streams until the client goes away, until is reached, or the server stops;
// each event is flushed as it is written.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := eventTime("since", q.Get("since"))
	if err != nil {
		writeError(w, err)
		return
	}
	until, err := eventTime("until", q.Get("until"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !until.IsZero() && until.Before(since) {
		writeError(w, badRequest("`since` time (%s) cannot be after `until` time (%s)", q.Get("since"), q.Get("until")))
		return
	}
	args, err := queryFilters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	from := since
	if from.IsZero() && until.IsZero() {
		// Neither: only what happens from now on. until alone replays every kept event
		// up to it, as dockerd's loadBufferedEvents does.
		from = time.Now()
	}
	past, next, cancel := s.b.Events(from)
	defer cancel()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	// send writes ev if it passes; false once the stream must end (until passed, or the
	// client is gone).
	send := func(ev api.Event) bool {
		if !until.IsZero() && ev.Time.After(until) {
			return false
		}
		m, ok := toMessage(ev)
		if !ok || !include(args, m) {
			return true
		}
		return enc.Encode(m) == nil && rc.Flush() == nil
	}
	_ = rc.Flush() // the client sees the 200 before the first event
	for _, ev := range past {
		if !send(ev) {
			return
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return // only past events were asked for
		}
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streams.Done():
			return
		case <-deadline:
			return
		case ev, ok := <-next:
			if !ok || !send(ev) {
				return
			}
		}
	}
}

// String makes a message readable in test failures.
func (m message) String() string {
	return fmt.Sprintf("%s %s %s %v", m.Type, m.Action, m.Actor.ID, m.Actor.Attributes)
}
