package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/api"
	"berth/internal/filters"
	"berth/store"
)

// The cases below are what dockerd 20.10.24 (Engine API 1.41, docker-oracle.sh) answered to
// /usr/bin/docker 20.10.24 with the same objects; each names the command and its output.

// oracleNetworks are the oracle's networks: its three builtin ones, web1 (labels a=1, b),
// myweb2 (a=2), xy (a sandbox attached) and a global one another host uses.
var oracleNetworks = []api.Network{
	{Name: "bridge", ID: "1339c0058cfaf0f95b3eb3773f661ffcce1b67eb7a42e7f0012276917f119384", Driver: "bridge", Scope: "local"},
	{Name: "host", ID: "8786723d290f79a05c1548eb8c3c0d23d00eb23c73896741d978fd86b7c1ca2c", Driver: "host", Scope: "local"},
	{Name: "none", ID: "0878757a73a454b5b0c331655a9f067bb1d8b2170f3bee394e32efa695ce0c21", Driver: "null", Scope: "local"},
	{Name: "web1", ID: "85b091ab08c6" + strings.Repeat("1", 52), Driver: "bridge", Scope: "local", Labels: map[string]string{"a": "1", "b": ""}},
	{Name: "myweb2", ID: "d049bcce3f19" + strings.Repeat("2", 52), Driver: "bridge", Scope: "local", Labels: map[string]string{"a": "2"}},
	{Name: "xy", ID: "d384ea97f604" + strings.Repeat("3", 52), Driver: "bridge", Scope: "local",
		Containers: map[string]api.NetworkContainer{"517441c1917a": {Name: "c1"}}},
	{Name: "ov", ID: "ee00" + strings.Repeat("4", 60), Driver: "overlay", Scope: "global",
		Peers: []api.NetworkPeer{{Name: "host2", IP: "192.0.2.2"}}},
}

func TestNetworkFilters(t *testing.T) {
	for _, tc := range []struct {
		filter []string
		want   string // names, space-separated, in oracleNetworks order; or the error
	}{
		{nil, "bridge host none web1 myweb2 xy ov"},
		// network ls -f name=web: myweb2 web1 (an unanchored regexp)
		{[]string{"name=web"}, "web1 myweb2"},
		// -f name=^web: web1; -f name=w.b: myweb2 web1; -f name=WEB: none; -f 'name=[': none
		{[]string{"name=^web"}, "web1"},
		{[]string{"name=w.b"}, "web1 myweb2"},
		{[]string{"name=WEB"}, ""},
		{[]string{"name=["}, ""},
		// -f name=web -f name=xy: myweb2 web1 xy (values of one key: any)
		{[]string{"name=web", "name=xy"}, "web1 myweb2 xy"},
		// -f id=1339: bridge; -f id=39c0: bridge (inside the ID: a regexp too)
		{[]string{"id=1339"}, "bridge"},
		{[]string{"id=39c0"}, "bridge"},
		// -f label=a: myweb2 web1; label=a=1: web1; label=b: web1; label=a=3: none
		{[]string{"label=a"}, "web1 myweb2"},
		{[]string{"label=a=1"}, "web1"},
		{[]string{"label=b"}, "web1"},
		{[]string{"label=a=3"}, ""},
		// -f label=a -f label=b: web1 (all of them)
		{[]string{"label=a", "label=b"}, "web1"},
		// -f driver=bridge: bridge myweb2 web1 xy; driver=bri: none; driver=null: none
		{[]string{"driver=bridge"}, "bridge web1 myweb2 xy"},
		{[]string{"driver=bri"}, ""},
		{[]string{"driver=null"}, "none"},
		// -f scope=local: all six; scope=global: none (the oracle had no global network);
		// scope=loc: none
		{[]string{"scope=local"}, "bridge host none web1 myweb2 xy"},
		{[]string{"scope=global"}, "ov"},
		{[]string{"scope=loc"}, ""},
		// -f type=custom: myweb2 web1 xy; type=builtin: bridge host none; both: all
		{[]string{"type=custom"}, "web1 myweb2 xy ov"},
		{[]string{"type=builtin"}, "bridge host none"},
		{[]string{"type=custom", "type=builtin"}, "bridge host none web1 myweb2 xy ov"},
		// -f dangling=true: myweb2 web1 xy. Docker 20.10 lists xy although c1 is attached
		// (its list leaves Containers empty); berth does what Docker's docs say, leaving xy
		// (and ov, in use on host2) out. dangling=false: bridge host none (+ xy, ov).
		{[]string{"dangling=true"}, "web1 myweb2"},
		{[]string{"dangling=1"}, "web1 myweb2"},
		{[]string{"dangling=false"}, "bridge host none xy ov"},
		{[]string{"dangling=0"}, "bridge host none xy ov"},
		{[]string{"dangling=true", "label=a=2"}, "myweb2"},
		// -f foo=bar: Error response from daemon: Invalid filter 'foo'
		{[]string{"foo=bar"}, "Invalid filter 'foo'"},
		// -f dangling=maybe: invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")
		{[]string{"dangling=maybe"}, `invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`},
		// -f dangling=true -f dangling=false: got more than one value for filter key "dangling"
		{[]string{"dangling=true", "dangling=false"}, `got more than one value for filter key "dangling"`},
		// -f type=weird: invalid filter: 'type'='weird'
		{[]string{"type=weird"}, "invalid filter: 'type'='weird'"},
	} {
		args, err := filters.Parse(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		match, err := networkMatcher(args)
		got := ""
		if err != nil {
			got = err.Error()
			if !badFilter(err) {
				t.Errorf("%q: error %v is not a bad filter (400)", tc.filter, err)
			}
		} else {
			var names []string
			for _, n := range oracleNetworks {
				if match(n) {
					names = append(names, n.Name)
				}
			}
			got = strings.Join(names, " ")
		}
		if got != tc.want {
			t.Errorf("network ls -f %q: got %q, want %q", tc.filter, got, tc.want)
		}
	}
}

// oracleSandboxes: web1 (label app=x, on network xy, -p 8080:80 -p 9000-9001:9000-9001/udp
// --expose 7000-7002) and db (on network web1, --expose 5432).
var oracleSandboxes = []api.Sandbox{
	{Name: "web1", ID: "0513a23b" + strings.Repeat("5", 56), Labels: map[string]string{"app": "x"},
		Networks: map[string]api.EndpointSettings{"xy": {NetworkID: oracleNetworks[5].ID}},
		Ports: map[string][]api.PortBinding{
			"80/tcp":   {{HostIP: "0.0.0.0", HostPort: "8080"}, {HostIP: "::", HostPort: "8080"}},
			"9000/udp": {{HostIP: "0.0.0.0", HostPort: "9000"}}, "9001/udp": {{HostIP: "0.0.0.0", HostPort: "9001"}},
			"7000/tcp": nil, "7001/tcp": nil, "7002/tcp": nil,
		},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "9000/udp": {}, "9001/udp": {}, "7000/tcp": {}, "7001/tcp": {}, "7002/tcp": {}}},
	{Name: "db", ID: "77aa" + strings.Repeat("6", 60),
		Networks:     map[string]api.EndpointSettings{"web1": {NetworkID: oracleNetworks[3].ID}},
		Ports:        map[string][]api.PortBinding{"5432/tcp": nil},
		ExposedPorts: map[string]struct{}{"5432/tcp": {}}},
}

func TestSandboxFilters(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   string // `docker ps -f FILTER --format '{{.Names}}'`
	}{
		{"name=web", "web1"},
		{"name=^web", "web1"},
		{"name=^/web", "web1"},
		{"name=eb1", "web1"},
		{"name=WEB", ""},
		{"id=13a23b", ""}, // inside the ID: no (a prefix)
		{"id=0513a2", "web1"},
		{"label=app", "web1"},
		{"label=app=x", "web1"},
		{"label=app=y", ""},
		{"network=xy", "web1"},
		{"network=x", ""},       // a name: exact
		{"network=85b09", "db"}, // an ID prefix
		{"network=b091ab", ""},  // not inside an ID
		// publish is the published host port: 80 no, 8080 yes
		{"publish=80", ""},
		{"publish=8080", "web1"},
		{"publish=80/tcp", ""},
		{"publish=80/udp", ""},
		{"publish=9000/udp", "web1"},
		{"publish=9000", ""},
		{"publish=8999-9000/udp", "web1"},
		{"publish=80/sctp", ""},
		{"publish=80/foo", ""},
		{"publish=9000/udp/x", "web1"}, // 20.10 reads the proto up to the next /
		{"publish=/udp", "error while looking up for publish /udp: empty string specified for ports"}, // oracle: "Empty string ..." (its nat version)
		{"expose=/tcp", "error while looking up for expose /tcp: empty string specified for ports"},
		{"expose=7001", "web1"},
		{"expose=7001/tcp", "web1"},
		{"expose=80", "web1"},
		{"expose=9001/udp", "web1"},
		{"expose=5432", "db"},
		{"expose=1-65535", "web1 db"},
		{"publish=80-79", "error while looking up for publish 80-79: invalid port range: 80-79"},
		{"publish=abc", `error while looking up for publish abc: invalid start port 'abc': invalid syntax`},
		{"publish=1:80", "filter for 'publish' should not contain ':': 1:80"},
		{"publish=", "error while looking up for publish : empty string specified for ports"},
		{"expose=abc", `error while looking up for expose abc: invalid start port 'abc': invalid syntax`},
		{"status=running", "Invalid filter 'status'"}, // a real ps filter; berth has no processes to run
	} {
		args, err := filters.Parse([]string{tc.filter})
		if err != nil {
			t.Fatal(err)
		}
		match, err := sandboxMatcher(args)
		got := ""
		if err != nil {
			got = err.Error()
			if !badFilter(err) {
				t.Errorf("%q: error %v is not a bad filter (400)", tc.filter, err)
			}
		} else {
			var names []string
			for _, sb := range oracleSandboxes {
				if match(sb) {
					names = append(names, sb.Name)
				}
			}
			got = strings.Join(names, " ")
		}
		if got != tc.want {
			t.Errorf("ps -f %q: got %q, want %q", tc.filter, got, tc.want)
		}
	}
}

func TestPruneFilters(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	// p1 (label keep), p2 (label env=dev), p3: created an hour ago; old: in 2019.
	nets := []*store.Network{
		{Name: "p1", Labels: map[string]string{"keep": ""}, Created: now.Add(-time.Hour)},
		{Name: "p2", Labels: map[string]string{"env": "dev"}, Created: now.Add(-time.Hour)},
		{Name: "p3", Created: now.Add(-time.Hour)},
		{Name: "old", Created: time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range []struct {
		filter []string
		want   string // `docker network prune -f --filter ...` Deleted Networks
	}{
		{nil, "p1 p2 p3 old"},
		{[]string{"label=nokeep"}, ""},
		{[]string{"label=keep"}, "p1"},
		{[]string{"label!=keep"}, "p2 p3 old"},
		{[]string{"label=env=dev"}, "p2"},
		{[]string{"label!=env=dev"}, "p1 p3 old"},
		{[]string{"label!=env"}, "p1 p3 old"},
		{[]string{"label=keep", "label=env"}, ""},
		// --filter 'label!=keep' --filter 'label!=env': p1 p2 p3 (kept only with all of them)
		{[]string{"label!=keep", "label!=env"}, "p1 p2 p3 old"},
		{[]string{"label=keep", "label!=keep"}, ""},
		{[]string{"label= "}, ""},
		{[]string{"label!="}, "p1 p2 p3 old"},
		// until keeps what was created after it: until=2h leaves the hour-old ones, until=-1h
		// (an hour ahead) takes all; the oracle's --filter until=-1h removed every unused one.
		{[]string{"until=2h"}, "old"},
		{[]string{"until=-1h"}, "p1 p2 p3 old"},
		{[]string{"until=-1h", "label=keep"}, "p1"},
		{[]string{"until=2020-01-01"}, "old"},
		{[]string{"until=2020-01-01T00:00:00Z"}, "old"},
		{[]string{"until=1600000000"}, "old"},
		{[]string{"until=1600000000.5"}, "old"},
		{[]string{"until=2026-12-07T07:30:00"}, "p1 p2 p3 old"},
		{[]string{"until=abc"}, `failed to parse value as time or duration: "abc"`},
		{[]string{"until=1h", "until=2h"}, "more than one until filter specified"},
		{[]string{"foo=bar"}, "Invalid filter 'foo'"},
		{[]string{"dangling=true"}, "Invalid filter 'dangling'"},
		{[]string{"name=p1"}, "Invalid filter 'name'"},
	} {
		args, err := filters.Parse(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		match, err := pruneMatcher(args, now)
		got := ""
		if err != nil {
			got = err.Error()
			if !badFilter(err) {
				t.Errorf("%q: error %v is not a bad filter (400)", tc.filter, err)
			}
		} else {
			var names []string
			for _, n := range nets {
				if match(n) {
					names = append(names, n.Name)
				}
			}
			got = strings.Join(names, " ")
		}
		if got != tc.want {
			t.Errorf("prune --filter %q: got %q, want %q", tc.filter, got, tc.want)
		}
	}
}

// oracleEvents is what the oracle logged for `network create evnet; network connect evnet
// c1; network disconnect evnet c1; network rm evnet`, in berth's events, plus a sandbox's
// and the daemon's own.
var oracleEvents = []api.Event{
	{Type: "network", Action: "create", ID: "aa11" + strings.Repeat("0", 60), Name: "evnet"},
	{Type: "sandbox", Action: "connect", ID: "517441c1917a" + strings.Repeat("0", 52), Name: "c1", Network: "evnet"},
	{Type: "sandbox", Action: "disconnect", ID: "517441c1917a" + strings.Repeat("0", 52), Name: "c1", Network: "evnet"},
	{Type: "network", Action: "rm", ID: "aa11" + strings.Repeat("0", 60), Name: "evnet"},
	{Type: "sandbox", Action: "create", ID: "bb22" + strings.Repeat("0", 60), Name: "web"},
	{Type: "sandbox", Action: "rename", ID: "bb22" + strings.Repeat("0", 60), Name: "www", OldName: "web"},
	{Type: "daemon", Action: "restart", Name: "/var/lib/berth"},
}

func TestEventFilters(t *testing.T) {
	for _, tc := range []struct {
		filter []string
		want   string // Type Action Name of each event that matches
	}{
		{nil, "network create evnet, sandbox connect c1, sandbox disconnect c1, network rm evnet, sandbox create web, sandbox rename www, daemon restart /var/lib/berth"},
		// docker events -f type=network: create, connect, disconnect, destroy of evnet
		{[]string{"type=network"}, "network create evnet, sandbox connect c1, sandbox disconnect c1, network rm evnet"},
		{[]string{"type=sandbox"}, "sandbox connect c1, sandbox disconnect c1, sandbox create web, sandbox rename www"},
		{[]string{"type=container"}, "sandbox connect c1, sandbox disconnect c1, sandbox create web, sandbox rename www"},
		{[]string{"type=daemon"}, "daemon restart /var/lib/berth"},
		// -f type=volume (Docker has volumes, berth none): nothing
		{[]string{"type=volume"}, ""},
		// -f event=create: network create evnet; -f event=connect: network connect
		{[]string{"event=create"}, "network create evnet, sandbox create web"},
		{[]string{"event=connect"}, "sandbox connect c1"},
		// -f event=create -f event=destroy: create and destroy
		{[]string{"event=create", "event=destroy"}, "network create evnet, network rm evnet, sandbox create web"},
		{[]string{"event=rm"}, "network rm evnet"},
		// -f network=evnet and -f network=evn (a prefix): all four of evnet
		{[]string{"network=evnet"}, "network create evnet, sandbox connect c1, sandbox disconnect c1, network rm evnet"},
		{[]string{"network=evn"}, "network create evnet, sandbox connect c1, sandbox disconnect c1, network rm evnet"},
		{[]string{"network=aa11"}, "network create evnet, network rm evnet"},
		{[]string{"network=vnet"}, ""},
		{[]string{"type=network", "network=evnet"}, "network create evnet, sandbox connect c1, sandbox disconnect c1, network rm evnet"},
		{[]string{"type=network", "event=create", "network=other"}, ""},
		{[]string{"sandbox=c1"}, "sandbox connect c1, sandbox disconnect c1"},
		{[]string{"container=5174"}, "sandbox connect c1, sandbox disconnect c1"},
		{[]string{"sandbox=bb22", "event=rename"}, "sandbox rename www"},
		// -f scope=local: all of them
		{[]string{"scope=local", "event=create"}, "network create evnet, sandbox create web"},
		{[]string{"scope=swarm"}, ""},
		{[]string{"label=oldName=web"}, "sandbox rename www"},
		{[]string{"image=bb"}, ""},
		{[]string{"daemon=/var"}, "daemon restart /var/lib/berth"},
		// Docker ignores keys it does not know (-f foo=bar: everything; -f since=T: ignored);
		// berth refuses them.
		{[]string{"foo=bar"}, "Invalid filter 'foo'"},
		{[]string{"since=1h"}, "Invalid filter 'since'"},
		{[]string{"type=bogus"}, "Invalid filter 'type=[bogus]'"},
		{[]string{"scope=bogus"}, "Invalid filter 'scope=[bogus]'"},
	} {
		args, err := filters.Parse(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		match, err := eventMatcher(args)
		got := ""
		if err != nil {
			got = err.Error()
			if !badFilter(err) {
				t.Errorf("%q: error %v is not a bad filter (400)", tc.filter, err)
			}
		} else {
			var evs []string
			for _, ev := range oracleEvents {
				if match(ev) {
					evs = append(evs, ev.Type+" "+ev.Action+" "+ev.Name)
				}
			}
			got = strings.Join(evs, ", ")
		}
		if got != tc.want {
			t.Errorf("events -f %q: got %q, want %q", tc.filter, got, tc.want)
		}
	}
}

// TestFilterQuery: the four /v1 endpoints read filters= in both of Docker's JSON forms and
// answer a bad one 400 with its one line.
func TestFilterQuery(t *testing.T) {
	h := testServer(t)
	get := func(method, path string) (int, []byte) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w.Code, w.Body.Bytes()
	}
	q := func(s string) string { return "?filters=" + url.QueryEscape(s) }
	for _, tc := range []struct {
		method, path string
		code         int
		want         string // names, or the message
	}{
		{"GET", "/v1/networks", 200, "App back"},
		{"GET", "/v1/networks" + q(`{"name":{"App":true}}`), 200, "App"},
		{"GET", "/v1/networks" + q(`{"label":["tier=db"]}`), 200, "back"},
		{"GET", "/v1/networks" + q(`{"dangling":{"true":true}}`), 200, "back"},
		{"GET", "/v1/networks" + q(`{"foo":["x"]}`), 400, "Invalid filter 'foo'"},
		{"GET", "/v1/networks" + q(`{"type":["x"]}`), 400, "invalid filter: 'type'='x'"},
		{"GET", "/v1/networks?filters=bad", 400, `invalid filter: filters is neither {"key":{"value":true}} nor {"key":["value"]}: invalid character 'b' looking for beginning of value`},
		{"GET", "/v1/sandboxes" + q(`{"network":{"App":true}}`), 200, "web"},
		{"GET", "/v1/sandboxes" + q(`{"network":{"back":true}}`), 200, ""},
		{"GET", "/v1/sandboxes" + q(`{"publish":{"1:2":true}}`), 400, "filter for 'publish' should not contain ':': 1:2"},
		{"POST", "/v1/networks/prune" + q(`{"until":["abc"]}`), 400, `failed to parse value as time or duration: "abc"`},
		{"POST", "/v1/networks/prune" + q(`{"name":["x"]}`), 400, "Invalid filter 'name'"},
		// label=nope matches nothing: nothing removed, so no kernel is needed here.
		{"POST", "/v1/networks/prune" + q(`{"label":["nope"]}`), 200, ""},
		{"GET", "/v1/events" + q(`{"foo":["x"]}`), 400, "Invalid filter 'foo'"},
	} {
		code, body := get(tc.method, tc.path)
		var got string
		var e api.Error
		var list []struct{ Name string }
		var prune api.PruneResponse
		switch {
		case code != 200:
			json.Unmarshal(body, &e)
			got = e.Message
		case strings.Contains(tc.path, "prune"):
			json.Unmarshal(body, &prune)
			got = strings.Join(prune.Deleted, " ")
		default:
			json.Unmarshal(body, &list)
			var names []string
			for _, x := range list {
				names = append(names, x.Name)
			}
			slices.Sort(names)
			got = strings.Join(names, " ")
		}
		if code != tc.code || got != tc.want {
			t.Errorf("%s %s: got %d %q, want %d %q", tc.method, tc.path, code, got, tc.code, tc.want)
		}
	}
}

// TestEventStreamFilters: the replay honours filters, since and until, and a stream whose
// until has passed ends by itself.
func TestEventStreamFilters(t *testing.T) {
	hub := newEventHub()
	srv := newServer(&daemon{events: hub, log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := srv.handler()
	start := time.Now().UTC()
	for _, ev := range oracleEvents {
		hub.publish(ev)
	}
	mid := time.Now().UTC()
	hub.publish(api.Event{Type: "network", Action: "create", Name: "late"})
	stream := func(query string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/events?"+query, nil))
		if w.Code != 200 {
			return w.Code, w.Body.String()
		}
		var names []string
		dec := json.NewDecoder(w.Body)
		for {
			var ev api.Event
			if dec.Decode(&ev) != nil {
				break
			}
			names = append(names, ev.Action+" "+ev.Name)
		}
		return w.Code, strings.Join(names, ", ")
	}
	f := func(s string) string { return "&filters=" + url.QueryEscape(s) }
	ts := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }
	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"since=" + ts(start) + "&until=" + ts(mid) + f(`{"type":["network"],"event":["create"]}`), 200, "create evnet"},
		{"since=" + ts(start) + "&until=" + ts(time.Now()) + f(`{"type":["network"],"event":["create"]}`), 200, "create evnet, create late"},
		{"since=" + ts(start) + "&until=" + ts(time.Now()) + f(`{"sandbox":["c1"]}`), 200, "connect c1, disconnect c1"},
		{"until=0" + f(`{"type":["daemon"]}`), 200, ""}, // until 0: the epoch, long past
		// until without since replays what was kept up to until, as dockerd does (oracle:
		// `docker events --until 0s` prints the kept events and ends).
		{"until=" + ts(mid) + f(`{"type":["network"],"event":["create"]}`), 200, "create evnet"},
		// dockerd's words and 400, not an empty stream (oracle: `docker events --since 1h
		// --until 0`: "`since` time (1796631707) cannot be after `until` time (0)").
		{"since=1h&until=0", 400, "{\"message\":\"`since` time (1h) cannot be after `until` time (0)\"}\n"},
		{"since=abc", 400, `{"message":"invalid since \"abc\": failed to parse value as time or duration: \"abc\""}` + "\n"},
	} {
		code, got := stream(tc.query)
		if code != tc.code || got != tc.want {
			t.Errorf("GET /v1/events?%s: got %d %q, want %d %q", tc.query, code, got, tc.code, tc.want)
		}
	}
}
