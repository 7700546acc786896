// Package etcdtest runs etcd servers for tests: Debian's etcd-server (/usr/bin/etcd, 3.4,
// v3 API) as child processes of the test binary, each with a fresh data dir under
// t.TempDir() and free ports on loopback (or on an address the test gives). It owns only the
// processes it starts: it never signals another etcd, and every server it starts is killed
// when its test ends.
package etcdtest

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Binary is the etcd the tests run: Debian's etcd-server, which issue 16 names as the
// server for tests and the demo.
const Binary = "/usr/bin/etcd"

const (
	// startTimeout bounds the wait for /health. A single member is healthy about one
	// election timeout (1 s) after it starts; a cluster needs its first election too.
	startTimeout = 10 * time.Second
	// stopTimeout bounds the wait for an exit after a signal. etcd 3.4 needs well under a
	// second to close its WAL and bbolt file on SIGTERM; after that it is killed.
	stopTimeout = 10 * time.Second
	// startAttempts: free ports are found by listening and closing, so another process can
	// take one before etcd binds it; Start then tries again with new ports.
	startAttempts = 3
	// maxLog caps the output kept per server: at --log-level error it is a few lines.
	maxLog = 1 << 20
)

// Option changes how Start and StartCluster run etcd.
type Option func(*config)

type config struct {
	host netip.Addr // address every URL listens on and advertises
}

// WithHost makes etcd listen on and advertise ip instead of 127.0.0.1, for example the
// address of an underlay bridge in the test's netns that simulated hosts reach.
func WithHost(ip netip.Addr) Option {
	return func(c *config) { c.host = ip }
}

func newConfig(opts []Option) config {
	c := config{host: netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Server is one etcd process, stopped and restarted on the same data dir and ports.
type Server struct {
	t      testing.TB
	name   string     // member name, unique per test binary
	client string     // client URL, http://host:port
	args   []string   // etcd's command line, the same on every (re)start
	out    *logBuffer // etcd's stdout and stderr, over all its runs
	httpc  *http.Client

	mu   sync.Mutex // guards following
	proc *process   // the running etcd, or nil
}

// serial makes member names unique within the test binary; the pid makes them unique
// among test binaries run in parallel by go test.
var serial atomic.Int64

// Start runs a single-member etcd and waits until it reports healthy. It skips the test if
// /usr/bin/etcd is missing, or fails it under CI=true, where etcd must be installed.
// etcd runs in the test process's netns: call Start from an ordinary goroutine, not from
// one locked to a thread in another netns (a new goroutine forks it).
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	requireBinary(t)
	c := newConfig(opts)
	var err error
	for range startAttempts {
		ports := freePorts(t, c.host, 2)
		s := newServer(t, c.host, memberName(), ports[0], ports[1])
		s.args = append(s.args, "--initial-cluster", s.name+"="+url(c.host, ports[1]),
			"--initial-cluster-token", s.name)
		if err = s.launch(); err == nil {
			err = s.waitHealthy(time.Now().Add(startTimeout))
		}
		if err == nil {
			return s
		}
		s.kill()
		if !s.out.contains("address already in use") {
			break
		}
	}
	t.Fatalf("start etcd: %v", err)
	return nil
}

func memberName() string {
	return fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), serial.Add(1))
}

// url is the plain-HTTP URL of a client or peer port: the tests stay on loopback or a test
// underlay, so no TLS.
func url(host netip.Addr, port int) string {
	return "http://" + netip.AddrPortFrom(host, uint16(port)).String()
}

// newServer prepares a server (not yet running) with its data dir and the flags every
// member shares; the caller adds the --initial-cluster flags.
func newServer(t testing.TB, host netip.Addr, name string, clientPort, peerPort int) *Server {
	t.Helper()
	client, peer := url(host, clientPort), url(host, peerPort)
	s := &Server{
		t:      t,
		name:   name,
		client: client,
		out:    &logBuffer{},
		// No proxy from the environment: the tests talk to their own etcd only.
		httpc: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second},
		args: []string{
			"--name", name,
			// A directory etcd makes itself, 0700: it warns about TempDir's 0755.
			"--data-dir", filepath.Join(t.TempDir(), "data"),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster-state", "new",
			// zap is the logger that honours --log-level in 3.4 (capnslog, the default,
			// also warns that it is deprecated).
			"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
		},
	}
	// Registered after TempDir, so it runs first: etcd is gone before its data dir is.
	t.Cleanup(func() {
		if err := s.kill(); err != nil {
			t.Errorf("etcd %s: %v", s.name, err)
		}
		if t.Failed() {
			t.Logf("etcd %s output:\n%s", s.name, s.out)
		}
	})
	return s
}

// Endpoints returns the client URL, in the form etcd clients take.
func (s *Server) Endpoints() []string { return []string{s.client} }

// Addr returns the client address as host:port, the form `--cluster-store etcd://` takes.
func (s *Server) Addr() string { return strings.TrimPrefix(s.client, "http://") }

// Name returns the member name.
func (s *Server) Name() string { return s.name }

// Logs returns what etcd has written so far (errors only, at the log level it runs with).
func (s *Server) Logs() string { return s.out.String() }

// Stop sends SIGTERM and waits for etcd to exit; it fails the test unless etcd exits on
// that signal in time. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("stop etcd %s: %v", s.name, err)
	}
}

// Kill sends SIGKILL to the process Start (or Restart) ran and waits for it to die, as
// when its host is lost. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.t.Helper()
	if err := s.kill(); err != nil {
		s.t.Fatalf("kill etcd %s: %v", s.name, err)
	}
}

func (s *Server) kill() error { return s.signal(syscall.SIGKILL) }

// Restart runs etcd again on the same data dir and ports, stopping it first (SIGTERM) if
// it still runs, and waits until it is healthy. A cluster member is healthy only once it
// sees a leader, so a quorum of its cluster must be running.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	err := s.launch()
	if err == nil {
		err = s.waitHealthy(time.Now().Add(startTimeout))
	}
	if err != nil {
		s.kill()
		s.t.Fatalf("restart etcd %s: %v", s.name, err)
	}
}

// WaitHealthy waits until etcd says it is healthy (bounded, as in Start). /health reads
// through raft, so after a cluster loses its leader this waits for a new one: until then
// writes are dropped and time out.
func (s *Server) WaitHealthy() {
	s.t.Helper()
	if err := s.waitHealthy(time.Now().Add(startTimeout)); err != nil {
		s.t.Fatalf("etcd %s: %v", s.name, err)
	}
}

// freePorts returns n distinct TCP ports free on host right now, held open together so
// that the kernel does not hand out one twice.
func freePorts(t testing.TB, host netip.Addr, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", netip.AddrPortFrom(host, 0).String())
		if err != nil {
			t.Fatalf("find a free port on %s: %v", host, err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// requireBinary skips the test without /usr/bin/etcd, or fails it under CI=true, where
// `make deps` installs it (as testns.Require does for root).
func requireBinary(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Binary); err == nil {
		return
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("etcd tests must run in CI: %v (make deps installs etcd-server)", err)
	}
	t.Skipf("needs %s: install Debian's etcd-server (make deps)", Binary)
}
