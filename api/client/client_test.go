package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"berth/api"
	"berth/internal/filters"
)

// serve runs h on a unix socket in a temp dir and returns a client for it.
func serve(t *testing.T, h http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "berth.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewHost(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"unix:///run/berth/berth.sock", "unix:///run/berth/berth.sock", true},
		{"/tmp/b.sock", "unix:///tmp/b.sock", true},
		{"tcp://1.2.3.4:2375", "", false},
		{"unix://", "", false},
		{"relative.sock", "", false},
	} {
		c, err := New(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("New(%q): err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && c.Host() != tc.want {
			t.Errorf("New(%q).Host() = %q, want %q", tc.in, c.Host(), tc.want)
		}
	}
}

func TestDefaultHost(t *testing.T) {
	t.Setenv(EnvHost, "")
	if got, want := DefaultHost(), "unix://"+api.DefaultSocket; got != want {
		t.Errorf("DefaultHost() = %q, want %q", got, want)
	}
	t.Setenv(EnvHost, "unix:///x.sock")
	if got := DefaultHost(); got != "unix:///x.sock" {
		t.Errorf("DefaultHost() with BERTH_HOST = %q", got)
	}
}

func TestErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sandboxes/{ref}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.Error{Message: "no such sandbox " + r.PathValue("ref")})
	})
	mux.HandleFunc("DELETE /v1/sandboxes/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("force") != "1" {
			w.WriteHeader(http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := serve(t, mux)
	ctx := context.Background()
	_, err := c.Sandbox(ctx, "web")
	if !IsNotFound(err) || err.Error() != "no such sandbox web" {
		t.Errorf("Sandbox(web): %v, want a 404 with the daemon's message", err)
	}
	if err := c.RemoveSandbox(ctx, "web", true); err != nil {
		t.Errorf("RemoveSandbox force: %v", err)
	}
	err = c.RemoveSandbox(ctx, "web", false)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusConflict || se.Message != "daemon answered 409: Conflict" {
		t.Errorf("RemoveSandbox: %v, want a 409 status error", err)
	}
	if IsUnreachable(err) {
		t.Errorf("a 409 is not unreachable")
	}
}

func TestUnreachable(t *testing.T) {
	c, err := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Ping(context.Background())
	if !IsUnreachable(err) || IsNotFound(err) {
		t.Fatalf("Ping without a daemon: %v, want unreachable", err)
	}
	if want := "cannot connect to the berth daemon at " + c.Host() + ": is it running?"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestWithFilters(t *testing.T) {
	for _, tc := range []struct {
		path string
		args filters.Args
		want string
	}{
		{"/networks", nil, "/networks"},
		{"/networks", filters.Args{}, "/networks"},
		{"/networks", filters.Args{"name": {"a b"}}, "/networks?filters=%7B%22name%22%3A%7B%22a+b%22%3Atrue%7D%7D"},
		{"/events?since=x", filters.Args{"type": {"network"}}, "/events?since=x&filters=%7B%22type%22%3A%7B%22network%22%3Atrue%7D%7D"},
	} {
		if got := WithFilters(tc.path, tc.args); got != tc.want {
			t.Errorf("WithFilters(%q, %v) = %q, want %q", tc.path, tc.args, got, tc.want)
		}
	}
}
