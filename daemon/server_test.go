package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"berth/api"
	"berth/internal/httplog"
	"berth/netmgr"
	"berth/store"
)

func TestWriteErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"invalid", fmt.Errorf("create network: %w", &netmgr.InvalidError{Field: "subnet", Value: "x", Reason: "bad"}), 400},
		{"request", &requestError{"empty"}, 400},
		{"not found", fmt.Errorf("network %q: %w", "x", store.ErrNotFound), 404},
		{"not found view", refNotFound(), 404},
		{"conflict", fmt.Errorf("name: %w", store.ErrConflict), 409},
		{"other", errors.New("netlink: operation not permitted\nsecond line"), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeError(w, tc.err)
			if w.Code != tc.want {
				t.Errorf("got status %d; want %d", w.Code, tc.want)
			}
			var e api.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if want := httplog.FirstLine(tc.err.Error()); e.Message != want {
				t.Errorf("got message %q; want %q", e.Message, want)
			}
		})
	}
}

// testServer serves the API over a memory store holding two networks and one sandbox.
func testServer(t *testing.T) http.Handler {
	t.Helper()
	st := store.NewMemory()
	if err := st.Update(fixture); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr := netmgr.New(netmgr.Config{Store: st, Log: log})
	return newServer(&daemon{st: st, mgr: mgr, log: log}).handler()
}

// IDs chosen so that "ab" is an ambiguous prefix and "abc1" a unique one.
var (
	appID  = "abc1" + strings.Repeat("0", 60)
	backID = "abc2" + strings.Repeat("0", 60)
	webID  = "def0" + strings.Repeat("0", 60)
)

func fixture(tx *store.Tx) error {
	app := &store.Network{ID: appID, Name: "App", Driver: store.DriverBridge, Bridge: "br-abc1",
		Subnets: []store.Subnet{{Subnet: mustPrefix("172.18.0.0/16"), Gateway: mustAddr("172.18.0.1")}}}
	back := &store.Network{ID: backID, Name: "back", Driver: store.DriverBridge, Bridge: "br-abc2",
		Internal: true, Labels: map[string]string{"tier": "db"},
		Subnets: []store.Subnet{{Subnet: mustPrefix("10.9.0.0/24"), Gateway: mustAddr("10.9.0.1"),
			IPRange: mustPrefix("10.9.0.128/25")}}}
	web := &store.Sandbox{ID: webID, Name: "web", Mode: store.ModeBridge, NetNSPath: "/run/netns/web",
		State: store.StateReady, DNS: []string{"1.1.1.1"}}
	ep := &store.Endpoint{ID: strings.Repeat("e", 64), NetworkID: appID, SandboxID: webID, IfName: "eth0",
		MAC: "02:42:ac:12:00:02", IPv4: mustAddr("172.18.0.2"), Aliases: []string{"www"},
		DNSNames: []string{"web", "www"}, Links: []store.Link{{Target: "db", Alias: "database"}, {Target: "cache"}}}
	for _, err := range []error{tx.PutNetwork(app), tx.PutNetwork(back), tx.PutSandbox(web), tx.PutEndpoint(ep)} {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestGetRefs(t *testing.T) {
	h := testServer(t)
	for _, tc := range []struct {
		path, wantName string
		wantStatus     int
		wantMsg        string
	}{
		{"/v1/networks/app", "App", 200, ""},
		{"/v1/networks/" + backID, "back", 200, ""},
		{"/v1/networks/abc1", "App", 200, ""},
		{"/v1/networks/ABC2", "back", 200, ""},
		{"/v1/networks/ab", "", 400, `invalid network "ab": ambiguous ID prefix: matches 2 networks`},
		{"/v1/networks/nope", "", 404, `network "nope" not found`},
		{"/v1/sandboxes/WEB", "web", 200, ""},
		{"/v1/sandboxes/def", "web", 200, ""},
		{"/v1/sandboxes/abc1", "", 404, `sandbox "abc1" not found`},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
		var got struct{ Name, Message string }
		json.Unmarshal(w.Body.Bytes(), &got)
		if w.Code != tc.wantStatus || got.Name != tc.wantName || got.Message != tc.wantMsg {
			t.Errorf("GET %s: got %d %+v; want %d name %q message %q", tc.path, w.Code, got,
				tc.wantStatus, tc.wantName, tc.wantMsg)
		}
	}
}

func TestBadBodies(t *testing.T) {
	h := testServer(t)
	for _, tc := range []struct {
		name, path, body, want string
	}{
		{"empty", "/v1/networks", "", "invalid request body: empty"},
		{"syntax", "/v1/networks", "{", "invalid request body: truncated JSON"},
		{"unknown field", "/v1/sandboxes", `{"Name":"x","Bogus":1}`, `invalid request body: unknown field "Bogus"`},
		// Fields the handler fills from the path are not body fields.
		{"path field", "/v1/networks/app/connect", `{"Container":"web","Network":"x"}`, `invalid request body: unknown field "Network"`},
		{"path field rename", "/v1/sandboxes/web/rename", `{"Name":"x","Sandbox":"y"}`, `invalid request body: unknown field "Sandbox"`},
		{"trailing", "/v1/networks/app/connect", `{"Container":"web"} {}`, "invalid request body: trailing data after the JSON value"},
		{"wrong type", "/v1/sandboxes/web/rename", `{"Name":5}`,
			"invalid request body: cannot unmarshal number into Go struct field SandboxRename.Name of type string"},
		{"too large", "/v1/networks", `{"Name":"` + strings.Repeat("x", maxBody) + `"}`,
			"invalid request body: larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body)))
			var e api.Error
			json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != 400 || e.Message != tc.want {
				t.Errorf("got %d %q; want 400 %q", w.Code, e.Message, tc.want)
			}
		})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("DELETE", "/v1/sandboxes/web?force=maybe", nil))
	if w.Code != 400 {
		t.Errorf("force=maybe: got %d; want 400", w.Code)
	}
}

func TestRoutes(t *testing.T) {
	h := testServer(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/ping", 200},
		{"GET", "/v1/networks", 200},
		{"GET", "/v1/sandboxes", 200},
		{"PUT", "/v1/networks", 405},
		{"GET", "/v2/networks", 404},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.want {
			t.Errorf("%s %s: got %d; want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
}

// refNotFound is the error a read gets for a reference that names nothing.
func refNotFound() error {
	_, err := netmgr.SandboxByRef(store.NewMemory().Snapshot(), "x")
	return err
}
