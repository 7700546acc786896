package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// call is one request the fake daemon received.
type call struct {
	Method string
	Path   string // with query
	Body   string
}

// fakeDaemon is an HTTP server on a unix socket in t.TempDir() that records requests and
// answers each with status and body (JSON), so CLI tests see exactly what the CLI sends.
type fakeDaemon struct {
	host   string
	calls  []call
	status int
	reply  any // nil: no body
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{status: http.StatusOK}
	sock := filepath.Join(t.TempDir(), "b.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.calls = append(f.calls, call{r.Method, r.URL.RequestURI(), string(b)})
		if f.reply == nil {
			w.WriteHeader(f.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		json.NewEncoder(w).Encode(f.reply)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	f.host = "unix://" + sock
	return f
}

// runCLI runs berth with args against host and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, host string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(append([]string{"--host", host}, args...))
	code = run(root, &errb)
	return out.String(), errb.String(), code
}

// sameJSON reports whether two JSON texts are equal as values.
func sameJSON(t *testing.T, got, want string) bool {
	t.Helper()
	if got == "" || want == "" {
		return got == want
	}
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

// requestCase is one CLI invocation and the single request it must send.
type requestCase struct {
	name       string
	args       []string
	reply      any
	wantMethod string
	wantPath   string
	wantBody   string // JSON, compared as a value; "" means no body
	wantOut    string
}

func runRequestCases(t *testing.T, cases []requestCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.reply = tc.reply
			out, errOut, code := runCLI(t, f.host, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if len(f.calls) != 1 {
				t.Fatalf("got %d requests, want 1: %+v", len(f.calls), f.calls)
			}
			c := f.calls[0]
			if c.Method != tc.wantMethod || c.Path != tc.wantPath {
				t.Errorf("got %s %s; want %s %s", c.Method, c.Path, tc.wantMethod, tc.wantPath)
			}
			if !sameJSON(t, c.Body, tc.wantBody) {
				t.Errorf("got body %s; want %s", c.Body, tc.wantBody)
			}
			if out != tc.wantOut {
				t.Errorf("got stdout %q; want %q", out, tc.wantOut)
			}
		})
	}
}

// errorCase is one CLI invocation that must fail with one stderr line.
type errorCase struct {
	name      string
	args      []string
	wantErr   string // stderr, without the newline
	wantCalls int
}

func runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			_, errOut, code := runCLI(t, f.host, tc.args...)
			if code != 1 {
				t.Errorf("got exit %d; want 1", code)
			}
			if got := strings.TrimSuffix(errOut, "\n"); got != tc.wantErr {
				t.Errorf("got stderr %q; want %q", got, tc.wantErr)
			}
			if len(f.calls) != tc.wantCalls {
				t.Errorf("got %d requests; want %d", len(f.calls), tc.wantCalls)
			}
		})
	}
}
