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

	"berth/dockerapi"
	"berth/internal/tlstest"
	"berth/netmgr"
	"berth/store"
)

// dockerServer is the Docker front end over the fixture of server_test.go (App with web
// on it, back) plus a predefined bridge.
func dockerServer(t *testing.T) http.Handler {
	t.Helper()
	st := store.NewMemory()
	err := st.Update(func(tx *store.Tx) error {
		if err := fixture(tx); err != nil {
			return err
		}
		return tx.PutNetwork(&store.Network{ID: "9" + strings.Repeat("0", 63), Name: "bridge", Driver: store.DriverBridge,
			Bridge: "berth0", Predefined: true,
			Subnets: []store.Subnet{{Subnet: mustPrefix("172.17.0.0/16"), Gateway: mustAddr("172.17.0.1")}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := &daemon{st: st, mgr: netmgr.New(netmgr.Config{Store: st, Log: log}), log: log, events: newEventHub()}
	return dockerapi.New(dockerapi.Config{Backend: dockerBackend{d}})
}

// TestDockerBackendErrors: berth's failures in dockerd's status codes and words. The
// oracle's (dockerd 20.10) answers are quoted where berth matches them; moby 28's source
// where 20.10 words them differently.
func TestDockerBackendErrors(t *testing.T) {
	h := dockerServer(t)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		// Oracle: 404 {"message":"network nope not found"}.
		{"inspect missing", "GET", "/v1.41/networks/nope", "", 404, "network nope not found"},
		{"inspect ambiguous", "GET", "/networks/ab", "", 400, `invalid network "ab": ambiguous ID prefix: matches 2 networks`},
		// Oracle: 400 {"message":"Invalid filter 'bogus'"}.
		{"list bad filter", "GET", `/networks?filters={"bogus":{"x":true}}`, "", 400, "Invalid filter 'bogus'"},
		{"list bad dangling", "GET", `/networks?filters={"dangling":{"maybe":true}}`, "", 400, "" /* daemon/filter.go's words */},
		// Oracle: 403 {"message":"bridge is a pre-defined network and cannot be removed"}.
		{"rm predefined", "DELETE", "/networks/bridge", "", 403, "bridge is a pre-defined network and cannot be removed"},
		// Oracle 20.10: 403 "error while removing network: network app id 98bd… has active
		// endpoints"; moby 28 (libnetwork ActiveEndpointsError): "network app has active
		// endpoints (web)", under the same prefix.
		{"rm in use", "DELETE", "/networks/App", "", 403, "error while removing network: network App has active endpoints (web)"},
		{"rm missing", "DELETE", "/networks/nope", "", 404, "network nope not found"},
		// Oracle: 404 {"message":"No such container: zzz"}, even for a missing network.
		{"connect no sandbox", "POST", "/networks/nope/connect", `{"Container":"zzz"}`, 404, "No such container: zzz"},
		{"connect no network", "POST", "/networks/nope/connect", `{"Container":"web"}`, 404, "network nope not found"},
		// Oracle: 403 {"message":"endpoint with name web already exists in network app"}.
		{"connect twice", "POST", "/networks/App/connect", `{"Container":"web"}`, 403, "endpoint with name web already exists in network App"},
		// Oracle: 500 {"message":"container 173e… is not connected to network app"}.
		{"disconnect not connected", "POST", "/networks/back/disconnect", `{"Container":"web"}`, 500,
			"container " + webID + " is not connected to network back"},
		{"disconnect no sandbox", "POST", "/networks/back/disconnect", `{"Container":"zzz"}`, 404, "No such container: zzz"},
		// Oracle (CheckDuplicate, and always since API 1.44): 409 "network with name app already exists".
		{"create duplicate", "POST", "/networks/create", `{"Name":"back"}`, 409, "network with name back already exists"},
		{"create bad subnet", "POST", "/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"10.5.0.0/33"}]}}`, 400, ""},
		{"prune bad filter", "POST", `/networks/prune?filters={"name":{"x":true}}`, "", 400, "Invalid filter 'name'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var e struct{ Message string }
			json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != tc.code || (tc.msg != "" && e.Message != tc.msg) || strings.Contains(e.Message, "\n") {
				t.Errorf("got %d %q; want %d %q", w.Code, e.Message, tc.code, tc.msg)
			}
		})
	}
}

func TestDockerBackendReads(t *testing.T) {
	h := dockerServer(t)
	get := func(path string, v any) {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatal(err)
		}
	}
	var list []struct{ Name, Id string }
	get(`/v1.41/networks?filters={"label":{"tier=db":true}}`, &list)
	if len(list) != 1 || list[0].Name != "back" {
		t.Errorf("label=tier=db: %+v", list)
	}
	get(`/v1.41/networks?filters={"type":["custom"]}`, &list) // the legacy form
	if len(list) != 2 {
		t.Errorf("type=custom: %+v; want App and back", list)
	}
	var n struct {
		Name       string
		Containers map[string]struct{ Name, IPv4Address string }
	}
	get("/v1.41/networks/abc1", &n)
	if n.Name != "App" || n.Containers[webID].Name != "web" || n.Containers[webID].IPv4Address != "172.18.0.2/16" {
		t.Errorf("inspect abc1: %+v", n)
	}
	var info struct{ Containers, ContainersRunning int }
	get("/info", &info)
	if info.Containers != 1 || info.ContainersRunning != 1 {
		t.Errorf("info %+v; want the one sandbox, running", info)
	}
}

func TestValidateDockerSocket(t *testing.T) {
	f := tlstest.Write(t, t.TempDir())
	mtls := TLSConfig{Verify: true, CACert: f.CA, Cert: f.ServerCert, Key: f.ServerKey}
	for _, tc := range []struct {
		sock, docker string
		tls          TLSConfig
		want, err    string
	}{
		{"/run/berth/berth.sock", "", TLSConfig{}, "", ""},
		{"/run/berth/berth.sock", "/run/berth/docker.sock", TLSConfig{}, "unix /run/berth/docker.sock", ""},
		{"/run/berth/berth.sock", "unix:///run/berth/docker.sock", TLSConfig{}, "unix /run/berth/docker.sock", ""},
		{"/run/berth/berth.sock", "/run/berth//berth.sock", TLSConfig{}, "", `invalid docker-socket "/run/berth//berth.sock": the same address as --socket`},
		{"unix:///run/b.sock", "/run/b.sock", TLSConfig{}, "", `invalid docker-socket "/run/b.sock": the same address as --socket`},
		{"/run/berth/berth.sock", "tcp://0.0.0.0:2375", TLSConfig{}, "", `invalid docker-socket "tcp://0.0.0.0:2375": tcp:// needs mutual TLS: --tlsverify --tlscacert FILE --tlscert FILE --tlskey FILE`},
		{"/run/berth/berth.sock", "tcp://127.0.0.1:2376", mtls, "tcp 127.0.0.1:2376", ""},
		{"tcp://127.0.0.1:2376", "tcp://127.0.0.1:2376", mtls, "", `invalid docker-socket "tcp://127.0.0.1:2376": the same address as --socket`},
		{"/run/berth/berth.sock", "tcp://2376", mtls, "", `invalid docker-socket "tcp://2376": want tcp://HOST:PORT`},
		{"/run/berth/berth.sock", "unix://", TLSConfig{}, "", `invalid docker-socket "unix://": no path`},
		{"/run/berth/berth.sock", "http://x", TLSConfig{}, "", `invalid docker-socket "http://x": want unix://PATH, a path, or tcp://HOST:PORT`},
	} {
		c := Config{Socket: tc.sock, DockerSocket: tc.docker, TLS: tc.tls}
		var err error
		if c.listen, err = parseListen("socket", c.Socket, c.TLS); err != nil {
			t.Fatal(err)
		}
		err = c.validateDockerSocket()
		got := ""
		if c.dockerListen.network != "" {
			got = c.dockerListen.network + " " + c.dockerListen.addr
		}
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) || (err == nil && got != tc.want) {
			t.Errorf("%q: got %q, %v; want %q, %q", tc.docker, got, err, tc.want, tc.err)
		}
	}
}

// TestDockerStatusMessage: berth's class tails (": conflict", ": not found") stay out of
// the Docker API's messages; the status carries the class, as dockerd's words do.
func TestDockerStatusMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: %w", store.ErrConflict),
			"could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"},
		{fmt.Errorf("sandbox x: %w", store.ErrNotFound), "sandbox x"},
		{errors.New("disk full: conflict"), "disk full: conflict"}, // not the class: words kept
		{fmt.Errorf("first line: %w\nsecond", store.ErrConflict), "first line"},
	} {
		var e *dockerapi.Error
		if !errors.As(status(409, tc.err), &e) || e.Message != tc.want {
			t.Errorf("%q: message %q; want %q", tc.err, e.Message, tc.want)
		}
	}
}
