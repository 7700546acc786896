package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"berth/api"
	"berth/internal/filters"
)

// fakeBackend records what the handlers asked and answers from its fields.
type fakeBackend struct {
	nets    []api.Network
	err     error // returned by every call when set
	gotArgs filters.Args
	created api.NetworkCreate
	removed string
	conn    api.NetworkConnect
	disc    api.NetworkDisconnect
	pruned  []string
	past    []api.Event
	next    chan api.Event
	since   time.Time
}

func (f *fakeBackend) Networks(args filters.Args) ([]api.Network, error) {
	f.gotArgs = args
	return f.nets, f.err
}

func (f *fakeBackend) Network(ref string) (api.Network, error) {
	if f.err != nil {
		return api.Network{}, f.err
	}
	for _, n := range f.nets {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	return api.Network{}, NetworkNotFound(ref)
}

func (f *fakeBackend) CreateNetwork(_ context.Context, req api.NetworkCreate) (string, error) {
	f.created = req
	return "0123abcd", f.err
}

func (f *fakeBackend) RemoveNetwork(_ context.Context, ref string) error {
	f.removed = ref
	return f.err
}

func (f *fakeBackend) Connect(_ context.Context, req api.NetworkConnect) error {
	f.conn = req
	return f.err
}

func (f *fakeBackend) Disconnect(_ context.Context, req api.NetworkDisconnect) error {
	f.disc = req
	return f.err
}

func (f *fakeBackend) PruneNetworks(_ context.Context, args filters.Args) ([]string, error) {
	f.gotArgs = args
	return f.pruned, f.err
}

func (f *fakeBackend) Events(since time.Time) ([]api.Event, <-chan api.Event, func()) {
	f.since = since
	if f.next == nil {
		f.next = make(chan api.Event)
	}
	return f.past, f.next, func() {}
}

func (f *fakeBackend) Info() (Info, error) {
	return Info{Containers: 2, ContainersRunning: 1, ContainersStopped: 1, DockerRootDir: "/var/lib/berth"}, f.err
}

var appNet = api.Network{
	Name: "app", ID: "5e61" + strings.Repeat("0", 60), Scope: "local", Driver: "bridge", EnableIPv4: true,
	IPAM: api.IPAM{Driver: "default", Options: map[string]string{}, Config: []api.IPAMConfig{{
		Subnet: "10.77.0.0/24", IPRange: "10.77.0.128/25", Gateway: "10.77.0.1",
		AuxAddresses: map[string]string{"h1": "10.77.0.5"}}}},
	Containers: map[string]api.NetworkContainer{"173e": {Name: "web", EndpointID: "01a0",
		MacAddress: "02:42:0a:4d:00:c8", IPv4Address: "10.77.0.200/24"}},
	Options: map[string]string{"com.docker.network.driver.mtu": "1400"},
	Labels:  map[string]string{"tier": "db"},
}

// do sends one request to a Server over f and returns the recorder.
func do(t *testing.T, f *fakeBackend, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	New(Config{Backend: f}).ServeHTTP(w, r)
	return w
}

func message_(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e errorResponse
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	return e.Message
}

// TestPing: dockerd 20.10 answers GET and HEAD /_ping with 200 "OK" and the headers
// Api-Version, Ostype: linux, Docker-Experimental: false, Server, no-cache.
func TestPing(t *testing.T) {
	for _, method := range []string{"GET", "HEAD"} {
		w := do(t, &fakeBackend{}, method, "/_ping", "")
		if w.Code != 200 {
			t.Fatalf("%s: got %d; want 200", method, w.Code)
		}
		if method == "GET" && w.Body.String() != "OK" {
			t.Errorf("GET body %q; want OK", w.Body.String())
		}
		for k, v := range map[string]string{"Api-Version": "1.48", "Ostype": "linux",
			"Docker-Experimental": "false", "Cache-Control": "no-cache, no-store, must-revalidate"} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s: header %s = %q; want %q", method, k, got, v)
			}
		}
		if !strings.HasPrefix(w.Header().Get("Server"), "berth/") {
			t.Errorf("Server header %q", w.Header().Get("Server"))
		}
	}
}

// TestVersionPrefixes: dockerd's words for an out-of-range version (the oracle, max 1.41:
// `client version 1.99 is too new. Maximum supported API version is 1.41`, 400).
func TestVersionPrefixes(t *testing.T) {
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/version", 200, ""},
		{"/v1.24/version", 200, ""},
		{"/v1.41/version", 200, ""},
		{"/v1.48/version", 200, ""},
		{"/v1.41/_ping", 200, ""},
		{"/v1.49/version", 400, "client version 1.49 is too new. Maximum supported API version is 1.48"},
		{"/v1.99/networks", 400, "client version 1.99 is too new. Maximum supported API version is 1.48"},
		{"/v2/version", 400, "client version 2 is too new. Maximum supported API version is 1.48"},
		{"/v1.23/version", 400, "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{"/v1.9/version", 400, "client version 1.9 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
		{"/vfoo/version", 404, "berth serves only Docker's network API; it runs no containers (GET /vfoo/version)"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := do(t, &fakeBackend{}, "GET", tc.path, "")
			if w.Code != tc.code {
				t.Fatalf("got %d %s; want %d", w.Code, w.Body, tc.code)
			}
			if tc.msg != "" {
				if got := message_(t, w); got != tc.msg {
					t.Errorf("got %q; want %q", got, tc.msg)
				}
			}
		})
	}
}

func TestVersionBody(t *testing.T) {
	w := do(t, &fakeBackend{}, "GET", "/v1.41/version", "")
	var v map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v["ApiVersion"] != "1.48" || v["MinAPIVersion"] != "1.24" || v["Os"] != "linux" {
		t.Errorf("got %v", v)
	}
	comps, _ := v["Components"].([]any)
	if len(comps) != 1 || comps[0].(map[string]any)["Name"] != "Engine" {
		t.Errorf("Components %v; want one Engine", v["Components"])
	}
}

// TestNotServed: anything but the network API is Docker's 404 error JSON saying why
// (dockerd says "page not found" for a path it does not have).
func TestNotServed(t *testing.T) {
	for _, tc := range []struct{ method, path string }{
		{"GET", "/containers/json"},
		{"GET", "/v1.41/containers/json"},
		{"POST", "/v1.48/containers/create"},
		{"GET", "/images/json"},
		{"PUT", "/networks"},
		{"GET", "/networks/app/connect"},
		{"GET", "/"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := do(t, &fakeBackend{}, tc.method, tc.path, "")
			if w.Code != 404 {
				t.Fatalf("got %d; want 404", w.Code)
			}
			if w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
			msg := message_(t, w)
			if !strings.HasPrefix(msg, "berth serves only Docker's network API; it runs no containers (") || strings.Contains(msg, "\n") {
				t.Errorf("got %q", msg)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	w := do(t, &fakeBackend{}, "GET", "/v1.41/info", "")
	var in map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &in); err != nil {
		t.Fatal(err)
	}
	// The CLI prints the Swarm block for any state but inactive, through pointers.
	if sw := in["Swarm"].(map[string]any); sw["LocalNodeState"] != "inactive" {
		t.Errorf("Swarm %v", sw)
	}
	if in["Containers"] != 2.0 || in["ContainersRunning"] != 1.0 || in["DockerRootDir"] != "/var/lib/berth" || in["OSType"] != "linux" {
		t.Errorf("got %v", in)
	}
	if _, ok := in["RegistryConfig"].(map[string]any); !ok {
		t.Errorf("RegistryConfig %v; want an object", in["RegistryConfig"])
	}
}

// TestListNetworks: the filters parameter, in both of Docker's forms, reaches the backend.
func TestListNetworks(t *testing.T) {
	f := &fakeBackend{nets: []api.Network{appNet}}
	w := do(t, f, "GET", `/v1.41/networks?filters={"name":{"app":true},"label":{"tier":true}}`, "")
	if w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	want := filters.Args{"name": {"app"}, "label": {"tier"}}
	if !reflect.DeepEqual(f.gotArgs, want) {
		t.Errorf("args %v; want %v", f.gotArgs, want)
	}
	do(t, f, "GET", `/v1.41/networks?filters={"name":["app"]}`, "") // the legacy form
	if !reflect.DeepEqual(f.gotArgs, filters.Args{"name": {"app"}}) {
		t.Errorf("legacy form: args %v", f.gotArgs)
	}
	var list []map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list) != 1 || list[0]["Name"] != "app" {
		t.Fatalf("got %s (%v)", w.Body, err)
	}
	// An empty list is [], never null.
	f.nets = nil
	if w := do(t, f, "GET", "/networks", ""); strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("empty list %q; want []", w.Body)
	}
	// Bad filter JSON: 400 (a filters error).
	if w := do(t, f, "GET", `/networks?filters={bad`, ""); w.Code != 400 {
		t.Errorf("bad filters JSON: got %d; want 400", w.Code)
	}
	// A backend's filter error: the oracle answers `Invalid filter 'bogus'` with 400.
	f.err = &filters.Error{Key: "bogus"}
	if w := do(t, f, "GET", `/networks?filters={"bogus":{"x":true}}`, ""); w.Code != 400 || message_(t, w) != "Invalid filter 'bogus'" {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
}

// TestInspectJSON: the shape of dockerd 20.10's `docker network inspect app` (captured
// from the oracle for a network made with --subnet 10.77.0.0/24 --gateway 10.77.0.1
// --ip-range 10.77.0.128/25 --aux-address h1=10.77.0.5 -o mtu=1400 --label tier=db and
// one container), less EnableIPv4, which API 1.48 adds.
func TestInspectJSON(t *testing.T) {
	f := &fakeBackend{nets: []api.Network{appNet}}
	w := do(t, f, "GET", "/v1.41/networks/app?verbose=false", "")
	if w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	const oracle = `{"Name":"app","Id":"5e61","Created":"2026-12-07T08:14:10.247565334Z","Scope":"local","Driver":"bridge","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.77.0.0/24","IPRange":"10.77.0.128/25","Gateway":"10.77.0.1","AuxiliaryAddresses":{"h1":"10.77.0.5"}}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{"173e":{"Name":"web","EndpointID":"01a0","MacAddress":"02:42:0a:4d:00:c8","IPv4Address":"10.77.0.200/24","IPv6Address":""}},"Options":{"com.docker.network.driver.mtu":"1400"},"Labels":{"tier":"db"}}`
	var want, got map[string]any
	if err := json.Unmarshal([]byte(oracle), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["EnableIPv4"] != true {
		t.Errorf("EnableIPv4 %v; want true", got["EnableIPv4"])
	}
	for _, k := range []string{"EnableIPv4", "Id", "Created"} { // values of this fixture
		delete(got, k)
		delete(want, k)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// Keys in dockerd's order, so the JSON reads the same.
	order := []string{"Name", "Id", "Created", "Scope", "Driver", "EnableIPv4", "EnableIPv6", "IPAM",
		"Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"}
	if got := topKeys(t, w.Body.Bytes()); !reflect.DeepEqual(got, order) {
		t.Errorf("keys %v; want dockerd's %v", got, order)
	}
}

// topKeys lists the keys of a JSON object in the order written.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestInspectErrors(t *testing.T) {
	f := &fakeBackend{nets: []api.Network{appNet}}
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/v1.41/networks/nope", 404, "network nope not found"}, // the oracle's words
		{"/networks/app?scope=swarm", 404, "network app not found"},
		{"/networks/app?scope=local", 200, ""},
		{"/networks/app?verbose=maybe", 400, `invalid value for verbose: maybe: strconv.ParseBool: parsing "maybe": invalid syntax`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := do(t, f, "GET", tc.path, "")
			if w.Code != tc.code {
				t.Fatalf("got %d %s; want %d", w.Code, w.Body, tc.code)
			}
			if tc.msg != "" && message_(t, w) != tc.msg {
				t.Errorf("got %q; want %q", message_(t, w), tc.msg)
			}
		})
	}
}

// TestCreate maps Docker's create body onto berth's request.
func TestCreate(t *testing.T) {
	f := &fakeBackend{}
	// What docker 20.10's CLI sends for `network create --subnet ... --ip-range ...
	// --aux-address ... -o ... --label ... --internal --attachable --ipv6 app`.
	body := `{"Name":"app","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":true,
	 "IPAM":{"Driver":"default","Options":{},"Config":[
	   {"Subnet":"10.77.0.0/24","IPRange":"10.77.0.128/25","Gateway":"10.77.0.1","AuxiliaryAddresses":{"h1":"10.77.0.5"}},
	   {"Subnet":"fd00:1::/64","Gateway":"fd00:1::1"}]},
	 "Internal":true,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,
	 "Options":{"com.docker.network.driver.mtu":"1400"},"Labels":{"tier":"db"},"Unknown":1}`
	w := do(t, f, "POST", "/v1.41/networks/create", body)
	if w.Code != 201 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if got := strings.TrimSpace(w.Body.String()); got != `{"Id":"0123abcd","Warning":""}` {
		t.Errorf("body %s", got)
	}
	want := api.NetworkCreate{Name: "app", Driver: "bridge", Internal: true, Attachable: true, IPv6: true,
		Subnets: []string{"10.77.0.0/24", "fd00:1::/64"}, Gateways: []string{"10.77.0.1", "fd00:1::1"},
		IPRanges: []string{"10.77.0.128/25"}, AuxAddresses: map[string]string{"h1": "10.77.0.5"},
		Options: map[string]string{"com.docker.network.driver.mtu": "1400"}, Labels: map[string]string{"tier": "db"}}
	if !reflect.DeepEqual(f.created, want) {
		t.Errorf("got  %+v\nwant %+v", f.created, want)
	}

	// EnableIPv4 counts from API 1.48 on, as in dockerd.
	do(t, f, "POST", "/v1.41/networks/create", `{"Name":"v6","EnableIPv4":false,"EnableIPv6":true}`)
	if f.created.IPv4 != nil {
		t.Errorf("1.41: IPv4 %v; want nil", *f.created.IPv4)
	}
	do(t, f, "POST", "/v1.48/networks/create", `{"Name":"v6","EnableIPv4":false,"EnableIPv6":true}`)
	if f.created.IPv4 == nil || *f.created.IPv4 || !f.created.IPv6 {
		t.Errorf("1.48: IPv4 %v IPv6 %v; want false, true", f.created.IPv4, f.created.IPv6)
	}
	do(t, f, "POST", "/networks/create", `{"Name":"c","ConfigFrom":{"Network":"base"}}`)
	if f.created.ConfigFrom != "base" {
		t.Errorf("ConfigFrom %q", f.created.ConfigFrom)
	}
}

func TestCreateErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ctype      string
		code       int
		msg        string
	}{
		// The oracle: 403 `operation is not permitted on predefined bridge network ` (sic).
		{"predefined", `{"Name":"bridge"}`, "", 403, "operation is not permitted on predefined bridge network "},
		{"predefined host", `{"Name":"host"}`, "", 403, "operation is not permitted on predefined host network "},
		// The oracle: 404 `plugin "nope" not found`.
		{"driver", `{"Name":"x","Driver":"nope"}`, "", 404, `plugin "nope" not found`},
		// The oracle (20.10) says the decoder's words, 400; dockerd 28 prefixes "invalid JSON: ".
		{"bad json", `{"Name":"x4",bad`, "", 400, "invalid JSON: invalid character 'b' looking for beginning of object key string"},
		{"trailing", `{"Name":"x"} {}`, "", 400, "unexpected content after JSON"},
		{"content type", `{"Name":"x"}`, "text/plain", 400, "unsupported Content-Type header (text/plain): must be 'application/json'"},
		{"ipam driver", `{"Name":"x","IPAM":{"Driver":"dhcp"}}`, "", 400, `invalid IPAM.Driver "dhcp": berth has only the default IPAM driver`},
		{"ipam options", `{"Name":"x","IPAM":{"Options":{"b":"1","a":"2"}}}`, "", 400, `invalid IPAM.Options "a": the default IPAM driver of berth takes no options`},
		{"gateway without subnet", `{"Name":"x","IPAM":{"Config":[{"Gateway":"10.0.0.1"}]}}`, "", 400,
			"invalid IPAM.Config[0]: a gateway, IP range or auxiliary address needs the pool's Subnet"},
		{"aux twice", `{"Name":"x","IPAM":{"Config":[{"Subnet":"10.0.0.0/24","AuxiliaryAddresses":{"a":"10.0.0.5"}},{"Subnet":"10.1.0.0/24","AuxiliaryAddresses":{"a":"10.1.0.5"}}]}}`, "", 400,
			`invalid IPAM.Config[1].AuxiliaryAddresses "a": already 10.0.0.5 in another pool`},
		{"swarm", `{"Name":"x","Scope":"swarm"}`, "", 400, `invalid Scope "swarm": berth has local (bridge) and global (overlay) networks, no swarm`},
		{"ingress", `{"Name":"x","Ingress":true}`, "", 400, "invalid Ingress true: berth has no swarm routing mesh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBackend{}
			r := httptest.NewRequest("POST", "/v1.41/networks/create", strings.NewReader(tc.body))
			ct := tc.ctype
			if ct == "" {
				ct = "application/json"
			}
			r.Header.Set("Content-Type", ct)
			w := httptest.NewRecorder()
			New(Config{Backend: f}).ServeHTTP(w, r)
			if w.Code != tc.code || message_(t, w) != tc.msg {
				t.Errorf("got %d %q; want %d %q", w.Code, message_(t, w), tc.code, tc.msg)
			}
			if f.created.Name != "" {
				t.Errorf("backend called with %+v", f.created)
			}
		})
	}
}

// TestBackendErrors: an *Error keeps its status and words; anything else is 500 with its
// first line.
func TestBackendErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{&Error{Status: 409, Message: "network with name app already exists"}, 409, "network with name app already exists"},
		{Errorf(403, "error while removing network: %w", errors.New("network app has active endpoints (web)")), 403,
			"error while removing network: network app has active endpoints (web)"},
		{errors.New("netlink: operation not permitted\nsecond line"), 500, "netlink: operation not permitted"},
	} {
		w := do(t, &fakeBackend{err: tc.err}, "DELETE", "/v1.41/networks/app", "")
		if w.Code != tc.code || message_(t, w) != tc.msg {
			t.Errorf("got %d %q; want %d %q", w.Code, message_(t, w), tc.code, tc.msg)
		}
	}
}

// TestRemoveConnectDisconnect: dockerd answers DELETE with 204, connect and disconnect
// with 200 and no body (the oracle).
func TestRemoveConnectDisconnect(t *testing.T) {
	f := &fakeBackend{}
	if w := do(t, f, "DELETE", "/v1.41/networks/app", ""); w.Code != 204 || f.removed != "app" {
		t.Errorf("delete: got %d, removed %q", w.Code, f.removed)
	}
	w := do(t, f, "POST", "/v1.41/networks/app/connect",
		`{"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.77.0.200","IPv6Address":"fd00::9"},"Aliases":["www"],"Links":["db:database"],"NetworkID":"x","IPAddress":"ignored"}}`)
	want := api.NetworkConnect{Network: "app", Sandbox: "web", Aliases: []string{"www"}, IPv4: "10.77.0.200",
		IPv6: "fd00::9", Links: []string{"db:database"}}
	if w.Code != 200 || w.Body.Len() != 0 || !reflect.DeepEqual(f.conn, want) {
		t.Errorf("connect: got %d %q %+v", w.Code, w.Body, f.conn)
	}
	w = do(t, f, "POST", "/v1.41/networks/app/disconnect", `{"Container":"web","Force":true}`)
	if w.Code != 200 || w.Body.Len() != 0 || f.disc != (api.NetworkDisconnect{Network: "app", Sandbox: "web", Force: true}) {
		t.Errorf("disconnect: got %d %q %+v", w.Code, w.Body, f.disc)
	}
	for _, tc := range []struct{ path, body, msg string }{
		{"/networks/app/connect", `{}`, "No such container: "},
		{"/networks/app/disconnect", `{}`, "No such container: "},
		{"/networks/app/connect", `{"Container":"web","EndpointConfig":{"MacAddress":"02:42:00:00:00:01"}}`,
			`invalid EndpointConfig.MacAddress "02:42:00:00:00:01": berth sets a sandbox's MAC address only when it creates it (--mac-address)`},
		{"/networks/app/connect", `{"Container":"web","EndpointConfig":{"DriverOpts":{"x":"1"}}}`,
			`invalid EndpointConfig.DriverOpts "x": the bridge driver of berth takes no endpoint options`},
		{"/networks/app/connect", `{"Container":"web","EndpointConfig":{"IPAMConfig":{"LinkLocalIPs":["169.254.1.1"]}}}`,
			`invalid EndpointConfig.IPAMConfig.LinkLocalIPs "169.254.1.1": not supported by berth`},
	} {
		f := &fakeBackend{}
		w := do(t, f, "POST", tc.path, tc.body)
		if got := message_(t, w); got != tc.msg || f.conn.Sandbox != "" || f.disc.Sandbox != "" {
			t.Errorf("%s %s: got %d %q; want %q, backend untouched", tc.path, tc.body, w.Code, got, tc.msg)
		}
	}
}

func TestPrune(t *testing.T) {
	f := &fakeBackend{pruned: []string{"app", "x5"}}
	w := do(t, f, "POST", `/v1.41/networks/prune?filters={"until":{"24h":true}}`, "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"NetworksDeleted":["app","x5"]}` {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
	if !reflect.DeepEqual(f.gotArgs, filters.Args{"until": {"24h"}}) {
		t.Errorf("args %v", f.gotArgs)
	}
}
