package dockerapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/api"
	"berth/internal/filters"
)

var evTime = time.Unix(1796631250, 316031531)

// TestToMessage: berth's events in the shapes the oracle (dockerd 20.10) streams:
//
//	{"Type":"network","Action":"create","Actor":{"ID":"98bd…","Attributes":{"name":"app","type":"bridge"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}
//	{"Type":"network","Action":"connect","Actor":{"ID":"81c3…","Attributes":{"container":"173e…","name":"bridge","type":"bridge"}},"scope":"local",…}
//	{"Type":"network","Action":"destroy","Actor":{"ID":"98bd…","Attributes":{"name":"app","type":"bridge"}},"scope":"local",…}
//	{"status":"destroy","id":"a1ed…","from":"bb","Type":"container","Action":"destroy","Actor":{"ID":"a1ed…","Attributes":{"image":"bb","name":"web"}},"scope":"local",…}
func TestToMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   api.Event
		want string // JSON; "" for an event left out
	}{
		{"network create", api.Event{Type: "network", Action: "create", ID: "98bd", Name: "app", Driver: "bridge"},
			`{"Type":"network","Action":"create","Actor":{"ID":"98bd","Attributes":{"name":"app","type":"bridge"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}`},
		{"network rm", api.Event{Type: "network", Action: "rm", ID: "98bd", Name: "app", Driver: "overlay"},
			`{"Type":"network","Action":"destroy","Actor":{"ID":"98bd","Attributes":{"name":"app","type":"overlay"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}`},
		{"connect", api.Event{Type: "sandbox", Action: "connect", ID: "173e", Name: "web", Network: "bridge", NetworkID: "81c3", Driver: "bridge"},
			`{"Type":"network","Action":"connect","Actor":{"ID":"81c3","Attributes":{"container":"173e","name":"bridge","type":"bridge"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}`},
		{"disconnect", api.Event{Type: "sandbox", Action: "disconnect", ID: "173e", Name: "web", Network: "app", NetworkID: "98bd"},
			`{"Type":"network","Action":"disconnect","Actor":{"ID":"98bd","Attributes":{"container":"173e","name":"app","type":"bridge"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}`},
		{"sandbox create", api.Event{Type: "sandbox", Action: "create", ID: "173e", Name: "web"},
			`{"status":"create","id":"173e","Type":"container","Action":"create","Actor":{"ID":"173e","Attributes":{"name":"web"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}`},
		{"sandbox rm", api.Event{Type: "sandbox", Action: "rm", ID: "173e", Name: "web"},
			`{"status":"destroy","id":"173e","Type":"container","Action":"destroy","Actor":{"ID":"173e","Attributes":{"name":"web"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}`},
		{"sandbox rename", api.Event{Type: "sandbox", Action: "rename", ID: "173e", Name: "web2", OldName: "web"},
			`{"status":"rename","id":"173e","Type":"container","Action":"rename","Actor":{"ID":"173e","Attributes":{"name":"web2","oldName":"/web"}},"scope":"local","time":1796631250,"timeNano":1796631250316031531}`},
		{"daemon restart", api.Event{Type: "daemon", Action: "restart", Name: "/var/lib/berth"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Time = evTime
			m, ok := toMessage(tc.ev)
			if tc.want == "" {
				if ok {
					t.Errorf("got %v; want it left out", m)
				}
				return
			}
			b, _ := json.Marshal(m)
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

// TestInclude: dockerd's filter rules (daemon/events/filter.go): type and event exact;
// container, network, ... match the actor's ID prefix or name whatever the event's type,
// so container=web drops web's network connect (its actor is the network).
func TestInclude(t *testing.T) {
	create, _ := toMessage(api.Event{Type: "network", Action: "create", ID: "98bd12", Name: "app", Time: evTime})
	connect, _ := toMessage(api.Event{Type: "sandbox", Action: "connect", ID: "173e", Name: "web", Network: "app", NetworkID: "98bd12", Time: evTime})
	ctr, _ := toMessage(api.Event{Type: "sandbox", Action: "create", ID: "173e", Name: "web", Time: evTime})
	for _, tc := range []struct {
		filter              string
		create, connect, sb bool
	}{
		{"", true, true, true},
		{"type=network", true, true, false},
		{"type=container", false, false, true},
		{"event=connect", false, true, false},
		{"event=create", true, false, true},
		{"network=app", true, true, false},
		{"network=98bd", true, true, false},
		{"network=other", false, false, false},
		{"container=web", false, false, true},
		{"container=173", false, false, true},
		{"scope=local", true, true, true},
		{"scope=swarm", false, false, false},
		{"label=x", false, false, false},
		{"image=bb", false, false, false},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			args := filters.Args{}
			if tc.filter != "" {
				k, v, _ := strings.Cut(tc.filter, "=")
				args.Add(k, v)
			}
			for _, c := range []struct {
				m    message
				want bool
			}{{create, tc.create}, {connect, tc.connect}, {ctr, tc.sb}} {
				if got := include(args, c.m); got != c.want {
					t.Errorf("%v: got %v; want %v", c.m, got, c.want)
				}
			}
		})
	}
}

func TestEventTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"1796631250", time.Unix(1796631250, 0), false},
		{"1796631250.000000123", time.Unix(1796631250, 123), false},
		{"1796631250.5", time.Unix(1796631250, 500000000), false},
		{"2026-12-07T08:14:10Z", time.Date(2026, 12, 7, 8, 14, 10, 0, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"12.x", time.Time{}, true},
		{"12.1234567890", time.Unix(12, 123456789), false}, // past nanoseconds: cut, as berth's CLI does
		{"12.-5", time.Time{}, true},
	} {
		got, err := eventTime("since", tc.in)
		if (err != nil) != tc.bad || !got.Equal(tc.want) {
			t.Errorf("%q: got %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
	if _, err := eventTime("since", "yesterday"); err.Error() != `invalid since "yesterday": want unix seconds[.nanoseconds], an RFC 3339 time or a duration` {
		t.Errorf("got %q", err)
	}
}

// TestEventStream: past events since the given time, then live ones, each flushed as it
// comes; a filter applies to both; until ends the stream.
func TestEventStream(t *testing.T) {
	now := time.Now()
	f := &fakeBackend{
		past: []api.Event{
			{Time: now.Add(-time.Second), Type: "network", Action: "create", ID: "aa", Name: "old"},
			{Time: now.Add(-time.Second), Type: "sandbox", Action: "create", ID: "bb", Name: "web"},
		},
		next: make(chan api.Event),
	}
	srv := httptest.NewServer(New(Config{Backend: f}))
	defer srv.Close()
	since := strconv.FormatInt(now.Add(-time.Minute).Unix(), 10) + ".000000000"
	until := strconv.FormatInt(now.Add(time.Minute).Unix(), 10)
	q := url.Values{"since": {since}, "until": {until}, "filters": {`{"type":{"network":true}}`}}
	resp, err := http.Get(srv.URL + "/v1.41/events?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := f.since.Unix(); got != now.Add(-time.Minute).Unix() {
		t.Errorf("backend since %d", got)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() message {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		var m message
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := next(); m.Action != "create" || m.Actor.Attributes["name"] != "old" {
		t.Errorf("first: got %v", m)
	}
	// Live: the sandbox create is filtered out, the connect arrives without anything after
	// it to push it through (it was flushed).
	f.next <- api.Event{Time: time.Now(), Type: "sandbox", Action: "create", ID: "cc", Name: "db"}
	f.next <- api.Event{Time: time.Now(), Type: "sandbox", Action: "connect", ID: "cc", Name: "db", Network: "app", NetworkID: "dd"}
	if m := next(); m.Type != "network" || m.Action != "connect" || m.Actor.Attributes["container"] != "cc" {
		t.Errorf("live: got %v", m)
	}
	// An event after until ends the stream.
	f.next <- api.Event{Time: now.Add(2 * time.Minute), Type: "network", Action: "create", ID: "ee", Name: "late"}
	if lines.Scan() {
		t.Errorf("got %s after until", lines.Text())
	}
}

// TestEventStreamPastOnly: an until in the past sends what was kept and ends at once.
func TestEventStreamPastOnly(t *testing.T) {
	now := time.Now()
	f := &fakeBackend{past: []api.Event{
		{Time: now.Add(-3 * time.Second), Type: "network", Action: "create", ID: "aa", Name: "a"},
		{Time: now.Add(-time.Second), Type: "network", Action: "create", ID: "bb", Name: "b"},
	}}
	q := url.Values{"since": {strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)},
		"until": {strconv.FormatInt(now.Add(-2*time.Second).Unix(), 10)}}
	w := do(t, f, "GET", "/events?"+q.Encode(), "")
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(w.Body.String()), "\n") {
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		names = append(names, m.Actor.Attributes["name"])
	}
	if !reflect.DeepEqual(names, []string{"a"}) {
		t.Errorf("got %v; want [a]", names)
	}
}

// TestEventStreamUntilOnly: until without since replays every kept event up to until, as
// dockerd's loadBufferedEvents does (oracle: `docker events --until 0s` prints the network
// connect and create events it kept, then ends).
func TestEventStreamUntilOnly(t *testing.T) {
	now := time.Now()
	f := &fakeBackend{past: []api.Event{
		{Time: now.Add(-time.Hour), Type: "network", Action: "create", ID: "aa", Name: "a"},
		{Time: now.Add(-time.Second), Type: "network", Action: "create", ID: "bb", Name: "b"},
	}}
	q := url.Values{"until": {strconv.FormatInt(now.Add(-2*time.Second).Unix(), 10)}}
	w := do(t, f, "GET", "/events?"+q.Encode(), "")
	if !f.since.IsZero() {
		t.Errorf("backend since %v; want the zero time (all kept events)", f.since)
	}
	var m message
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || m.Actor.Attributes["name"] != "a" {
		t.Errorf("got %q (%v); want a's create alone", w.Body, err)
	}
}

func TestEventErrors(t *testing.T) {
	for _, tc := range []struct{ query, msg string }{
		{"since=20&until=10", "`since` time (20) cannot be after `until` time (10)"}, // dockerd's words
		{"since=x", `invalid since "x": want unix seconds[.nanoseconds], an RFC 3339 time or a duration`},
		{"until=x", `invalid until "x": want unix seconds[.nanoseconds], an RFC 3339 time or a duration`},
	} {
		w := do(t, &fakeBackend{}, "GET", "/events?"+tc.query, "")
		if w.Code != 400 || message_(t, w) != tc.msg {
			t.Errorf("%s: got %d %q; want 400 %q", tc.query, w.Code, message_(t, w), tc.msg)
		}
	}
}
