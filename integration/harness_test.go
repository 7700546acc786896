// Package integration runs the real berth binary against the real kernel, as root, inside a
// private network and mount namespace (internal/testns re-executes the test binary under
// `unshare --net --mount`), so nothing in the machine's own namespaces changes.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/internal/testns"
)

func TestMain(m *testing.M) { os.Exit(testns.Main(m)) }

// builtBinary builds one of the repository's commands once per test binary, or takes it from
// the environment (make test builds them before the tests, while the module cache is
// reachable).
type builtBinary struct {
	env, pkg string   // e.g. BERTH_BIN, ./cmd/berth
	with     []string // more commands built into the same directory
	once     sync.Once
	path     string
	err      error
}

var (
	berthBinary = &builtBinary{env: "BERTH_BIN", pkg: "./cmd/berth", with: []string{"./cmd/berth-daemon"}}
	cniBinary   = &builtBinary{env: "BERTH_CNI_BIN", pkg: "./cmd/berth-cni"}
)

func (b *builtBinary) get(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		if p := os.Getenv(b.env); p != "" {
			b.path = p
			return
		}
		_, file, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "berth-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(b.pkg))
		// `berth daemon` executes berth-daemon from beside berth, so it is built there too.
		for _, pkg := range append([]string{b.pkg}, b.with...) {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
			cmd.Dir = filepath.Join(filepath.Dir(file), "..")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// berthBin returns the berth binary ($BERTH_BIN or a fresh build).
func berthBin(t *testing.T) string { return berthBinary.get(t) }

// daemon is one berth daemon with its own state dir and socket.
type daemon struct {
	t      *testing.T
	bin    string
	root   string
	sock   string
	resolv string   // the daemon's --resolv-conf
	env    []string // extra environment of the next start
	// debug starts the daemon with --log-level debug. Off by default: debug logging takes
	// every query off the UDP fast path, so the suite runs what production runs, and
	// TestDNSDebugLevel covers the debug path.
	debug bool
	cmd   *exec.Cmd
	log   *syncBuffer // the daemon's output, read by tests while it runs
	done  chan struct{}
}

// newDaemon prepares (but does not start) a daemon rooted in a fresh temp dir, and
// registers a cleanup that removes everything it made and checks the namespace is left
// as it was found.
func newDaemon(t *testing.T) *daemon {
	t.Helper()
	testns.Require(t)
	before := testns.KernelSnapshot(t) + nftRuleset()
	root := t.TempDir()
	d := &daemon{t: t, bin: berthBin(t), root: root, sock: filepath.Join(root, "berth.sock"),
		resolv: filepath.Join(root, "resolv.conf")}
	if err := os.WriteFile(d.resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.removeAll()
		d.stop()
		wipeBerthObjects(t)
		// The daemon makes its UTS pin dir a mount point (shared, as /run/netns), which
		// outlives it by design: unmount it so the temp dir can go.
		syscall.Unmount(filepath.Join(root, "uts"), syscall.MNT_DETACH)
		if after := testns.KernelSnapshot(t) + nftRuleset(); after != before {
			t.Errorf("namespace not left as found:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	return d
}

func (d *daemon) start(extra ...string) {
	d.t.Helper()
	args := []string{"daemon", "--root", d.root, "--socket", d.sock, "--resolv-conf", d.resolv}
	if d.debug {
		args = append(args, "--log-level", "debug")
	}
	args = append(args, extra...)
	d.cmd = exec.Command(d.bin, args...)
	d.cmd.Env = append(os.Environ(), d.env...)
	if d.log == nil {
		d.log = &syncBuffer{}
	}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := d.run("network", "ls", "-q"); err == nil {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("daemon exited at start: %s", d.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.t.Fatalf("daemon did not answer within 10s:\n%s", d.log)
}

// syncBuffer is a bytes.Buffer that the daemon's output copier writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// stop ends the daemon gracefully (SIGTERM); kill ends it with SIGKILL, like a crash.
func (d *daemon) stop() { d.signal(syscall.SIGTERM) }
func (d *daemon) kill() { d.signal(syscall.SIGKILL) }

func (d *daemon) signal(sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(sig)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
			d.t.Errorf("daemon ignored %v for 10s", sig)
		}
	}
	d.cmd = nil
}

// run runs a berth client command against this daemon.
func (d *daemon) run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.sock)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// must runs a berth command that has to succeed and returns its trimmed stdout.
func (d *daemon) must(args ...string) string {
	d.t.Helper()
	o, e, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, o, e)
	}
	return strings.TrimSpace(o)
}

// fails runs a berth command that has to fail with exactly one line on stderr containing want.
func (d *daemon) fails(want string, args ...string) {
	d.t.Helper()
	o, e, err := d.run(args...)
	if err == nil {
		d.t.Errorf("berth %s succeeded (stdout %q), want an error containing %q", strings.Join(args, " "), o, want)
		return
	}
	e = strings.TrimRight(e, "\n")
	if strings.Count(e, "\n") != 0 || !strings.Contains(e, want) {
		d.t.Errorf("berth %s: stderr %q, want one line containing %q", strings.Join(args, " "), e, want)
	}
}

// removeAll removes every sandbox and network through the API (best effort).
func (d *daemon) removeAll() {
	if d.cmd == nil {
		return
	}
	if ids, _, err := d.run("sandbox", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(ids) {
			d.run("sandbox", "rm", "-f", id)
		}
	}
	d.run("network", "prune")
}

// wipeBerthObjects removes what the daemon leaves by design after it stops (the default
// bridge berth0 lives as long as the state), so the next test starts clean.
func wipeBerthObjects(t *testing.T) {
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		if name == "berth0" || strings.HasPrefix(name, "br-") || strings.HasPrefix(name, "bth") {
			exec.Command("ip", "link", "del", name).Run()
		}
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		p := filepath.Join("/run/netns", e.Name())
		syscall.Unmount(p, syscall.MNT_DETACH)
		os.Remove(p)
	}
	entries, _ = os.ReadDir("/etc/netns")
	for _, e := range entries {
		os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
	}
	// berth's rules outlive the daemon on purpose (a restart must not cut traffic), and
	// table inet berth (the user chain) is never removed by berth.
	for _, fam := range []string{"ip", "ip6", "bridge", "inet"} {
		exec.Command("nft", "delete", "table", fam, "berth").Run()
	}
}

// nftRuleset is the whole ruleset of the test's netns, for the "left as found" check.
func nftRuleset() string {
	out, _ := exec.Command("nft", "list", "ruleset").CombinedOutput()
	return "nft:\n" + string(out)
}

// inNS runs a command inside a sandbox with `ip netns exec`, as a user would.
func inNS(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

func ping(t *testing.T, ns, addr string) error {
	t.Helper()
	out, err := inNS(t, ns, "ping", "-c1", "-W1", addr)
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v: %s", addr, ns, err, out)
	}
	return nil
}

// sandboxJSON is the part of `berth sandbox inspect` the tests read.
type sandboxJSON struct {
	ID         string `json:"Id"`
	Name       string
	SandboxKey string
	Networks   map[string]struct {
		EndpointID        string
		IPAddress         string
		GlobalIPv6Address string
		MacAddress        string
		Aliases           []string
		DNSNames          []string
		InterfaceName     string
	}
}

func (d *daemon) inspectSandbox(name string) sandboxJSON {
	d.t.Helper()
	var out []sandboxJSON
	if err := json.Unmarshal([]byte(d.must("sandbox", "inspect", name)), &out); err != nil || len(out) != 1 {
		d.t.Fatalf("sandbox inspect %s: %v (%d results)", name, err, len(out))
	}
	return out[0]
}

func (d *daemon) ip(sandbox, network string) string {
	d.t.Helper()
	s := d.inspectSandbox(sandbox)
	ep, ok := s.Networks[network]
	if !ok || ep.IPAddress == "" {
		d.t.Fatalf("sandbox %s has no address on %s: %+v", sandbox, network, s.Networks)
	}
	return ep.IPAddress
}
