package etcdtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// These tests talk to etcd through its v3 HTTP/JSON gateway (keys and values in base64),
// so that the harness needs no etcd client module.

func TestStartHealthy(t *testing.T) {
	t.Parallel()
	s := Start(t)
	eps := s.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
		t.Fatalf("endpoints %q; want one http://127.0.0.1:PORT", eps)
	}
	if got, want := s.Addr(), strings.TrimPrefix(eps[0], "http://"); got != want {
		t.Errorf("addr %q; want %q", got, want)
	}
	if err := s.health(); err != nil {
		t.Fatalf("health after Start: %v", err)
	}
}

func TestPutGet(t *testing.T) {
	t.Parallel()
	s := Start(t)
	put(t, s, "/berth/k", "v1")
	if got, ok := get(t, s, "/berth/k"); !ok || got != "v1" {
		t.Fatalf("get /berth/k = %q, %v; want v1", got, ok)
	}
	if got, ok := get(t, s, "/berth/missing"); ok {
		t.Fatalf("get /berth/missing = %q; want no key", got)
	}
}

func TestKillRestartKeepsData(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ep := s.Endpoints()[0]
	put(t, s, "k", "kept")
	s.Kill()
	if err := s.health(); err == nil {
		t.Fatal("health answers after Kill")
	}
	s.Restart()
	if got := s.Endpoints()[0]; got != ep {
		t.Errorf("endpoint after Restart %q; want %q", got, ep)
	}
	if got, ok := get(t, s, "k"); !ok || got != "kept" {
		t.Fatalf("get k after kill and restart = %q, %v; want kept", got, ok)
	}
}

func TestStopClean(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Stop() // fails the test unless etcd exits on SIGTERM
	s.Stop() // a stopped server stays stopped
	s.Kill()
	// Its client port is free again: nothing of etcd is left listening.
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("listen on %s after Stop: %v", s.Addr(), err)
	}
	l.Close()
	// etcd's own (zap, JSON) lines are errors only; grpc's gateway may warn on its own
	// format while the listeners close, which is not etcd failing.
	if logs := s.Logs(); strings.Contains(logs, `"level":"`) {
		t.Errorf("etcd logged errors:\n%s", logs)
	}
}

func TestClusterLosesMember(t *testing.T) {
	t.Parallel()
	cl := StartCluster(t, 3)
	if got := len(cl.Endpoints()); got != 3 {
		t.Fatalf("%d endpoints; want 3", got)
	}
	lead := cl.Leader()
	var follower *Server
	for _, m := range cl.Members {
		if m != lead {
			follower = m
		}
	}
	put(t, lead, "before", "1")
	lead.Kill()
	follower.WaitHealthy() // a new leader is elected: two of three are a quorum
	if got := cl.Leader(); got == lead {
		t.Fatalf("leader after killing %s is still %s", lead.Name(), got.Name())
	}
	put(t, follower, "during", "2")
	lead.Restart()
	for _, k := range []string{"before", "during"} {
		// A range is linearizable: the restarted member answers once it has caught up.
		if _, ok := get(t, lead, k); !ok {
			t.Errorf("restarted member has no %q", k)
		}
	}
}

// put writes key=value through the gateway's /v3/kv/put.
func put(t *testing.T, s *Server, key, value string) {
	t.Helper()
	post(t, s, "/v3/kv/put", map[string]string{"key": b64(key), "value": b64(value)}, nil)
}

// get reads key through /v3/kv/range; ok is false if there is no such key.
func get(t *testing.T, s *Server, key string) (value string, ok bool) {
	t.Helper()
	var resp struct {
		Kvs []struct{ Key, Value string }
	}
	post(t, s, "/v3/kv/range", map[string]string{"key": b64(key)}, &resp)
	if len(resp.Kvs) == 0 {
		return "", false
	}
	v, err := base64.StdEncoding.DecodeString(resp.Kvs[0].Value)
	if err != nil {
		t.Fatalf("decode value of %q: %v", key, err)
	}
	return string(v), true
}

func post(t *testing.T, s *Server, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	resp, err := c.Post(s.Endpoints()[0]+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, raw.String())
	}
	if out != nil {
		if err := json.Unmarshal(raw.Bytes(), out); err != nil {
			t.Fatalf("POST %s: decode %q: %v", path, raw.String(), err)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
