package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"berth/netmgr"
	"berth/store"
)

// TestRequestContextReachesNetmgr: every change the API makes runs under the request's
// context, so a client that has gone away (net/http cancels r.Context()) changes nothing.
// The daemon has no kernel and no dnsd: a change that goes on past the cancelled context
// reaches one of them and panics, which the test reports as that.
func TestRequestContextReachesNetmgr(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"create network", "POST", "/v1/networks", `{"Name":"new"}`},
		{"create sandbox", "POST", "/v1/sandboxes", `{"Name":"new","Networks":["back"]}`},
		{"connect", "POST", "/v1/networks/back/connect", `{"Container":"web"}`},
		{"disconnect", "POST", "/v1/networks/app/disconnect", `{"Container":"web"}`},
		{"rename", "POST", "/v1/sandboxes/web/rename", `{"Name":"web2"}`},
		{"remove network", "DELETE", "/v1/networks/back", ""},
		{"remove sandbox", "DELETE", "/v1/sandboxes/web?force=1", ""},
		{"prune", "POST", "/v1/networks/prune", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := store.NewMemory()
			if err := st.Update(fixture); err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			// Real directories, so a change that goes on writes nowhere but the test's.
			dir := t.TempDir()
			mgr := netmgr.New(netmgr.Config{Store: st, Log: log, NetNSDir: dir + "/netns",
				FilesDir: dir + "/files", RunDir: dir + "/run"})
			h := newServer(&daemon{st: st, mgr: mgr, events: newEventHub(), log: log}).handler()
			before := dumpStore(t, st)

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)).WithContext(ctx)
			w := httptest.NewRecorder()
			if p := serveRecover(h, w, r); p != nil {
				t.Fatalf("went on past the cancelled context: %v", p)
			}
			if want := context.Canceled.Error(); !strings.Contains(w.Body.String(), want) {
				t.Errorf("got %d %s; want an error saying %q", w.Code, strings.TrimSpace(w.Body.String()), want)
			}
			if after := dumpStore(t, st); after != before {
				t.Errorf("store changed:\n got %s\nwant %s", after, before)
			}
		})
	}
}

// serveRecover serves r and returns what the handler panicked with, if it did.
func serveRecover(h http.Handler, w http.ResponseWriter, r *http.Request) (p any) {
	defer func() { p = recover() }()
	h.ServeHTTP(w, r)
	return nil
}

// dumpStore is every network and sandbox record of st, with its endpoints, as JSON.
func dumpStore(t *testing.T, st *store.Store) string {
	t.Helper()
	snap := st.Snapshot()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, n := range snap.Networks() {
		fmt.Fprint(&b, "network ")
		enc.Encode(n)
	}
	for _, sb := range snap.Sandboxes() {
		fmt.Fprint(&b, "sandbox ")
		enc.Encode(sb)
		for _, ep := range snap.SandboxEndpoints(sb.ID) {
			fmt.Fprint(&b, "endpoint ")
			enc.Encode(ep)
		}
	}
	return b.String()
}
