package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/api"
	apiclient "berth/api/client"
	"berth/internal/nsutil"
)

// TestResolverOnlyInside: a sandbox's resolver answers its own processes only: not peers
// on the bridge, not the daemon's netns.
func TestResolverOnlyInside(t *testing.T) {
	d, _ := dnsSetup(t)
	webIP := d.ip("web", "app")
	for _, from := range []string{"db", ""} {
		var out string
		var err error
		if from == "" {
			out, err = runOut("dig", "@"+webIP, "+tries=1", "+time=1", "db")
		} else {
			out, err = inNS(t, from, "dig", "@"+webIP, "+tries=1", "+time=1", "db")
		}
		if err == nil && strings.Contains(out, "status:") {
			t.Errorf("web's resolver answered a query from %q sent to %s:53:\n%s", from, webIP, out)
		}
	}
	if r := dig(t, "web", "db"); len(r.values("A")) != 1 {
		t.Errorf("web's own query failed: %v", r.raw)
	}
}

// TestIdleTCPClients: idle TCP connections to 127.0.0.11 beyond the per-sandbox cap are
// closed at once and never stall UDP or the other sandboxes (CVE-2024-8418's class).
func TestIdleTCPClients(t *testing.T) {
	dnsSetup(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	err := nsutil.Do("/run/netns/web", func() error {
		for i := 0; i < 100; i++ {
			c, err := net.DialTimeout("tcp", "127.0.0.11:53", time.Second)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("open idle connections: %v", err)
	}
	start := time.Now()
	if r := dig(t, "web", "db"); len(r.values("A")) != 1 {
		t.Errorf("UDP with 100 idle TCP clients: %v", r.raw)
	}
	if r := dig(t, "db", "+tcp", "web"); len(r.values("A")) != 1 {
		t.Errorf("another sandbox's TCP with web's clients idle: %v", r.raw)
	}
	t.Logf("answers with 100 idle TCP clients took %v", time.Since(start).Round(time.Millisecond))
}

// TestNoThreadLeftInSandbox: after many sandboxes come and go (each a netns switch for
// its DNS sockets), every thread of the daemon is back in the daemon's netns.
func TestNoThreadLeftInSandbox(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.56.0.0/22", "app")
	// 1,000 sandboxes come and go (through the API: the CLI's process start would dominate).
	c, err := apiclient.New("unix://" + d.sock)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("churn%d", i)
		if _, err := c.CreateSandbox(t.Context(), api.SandboxCreate{Name: name, Networks: []string{"app"}}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if err := c.RemoveSandbox(t.Context(), name, true); err != nil {
			t.Fatalf("rm %s: %v", name, err)
		}
	}
	// Forwarded queries to a sandbox's own --dns are dialled from inside it, too.
	d.must("sandbox", "create", "--name", "fwd", "--network", "app", "--dns", "10.56.0.1")
	for i := 0; i < 20; i++ {
		dig(t, "fwd", fmt.Sprintf("x%d.example", i))
	}
	// A served sandbox may keep a thread of its own in its netns while it lives (dnsd's
	// socket pool for its --dns upstreams); once every sandbox is gone, none may be left.
	for _, id := range strings.Fields(d.must("sandbox", "ls", "-q")) {
		d.must("sandbox", "rm", "-f", id)
	}
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var tasks, foreign []string
	ok := eventually(t, func() bool {
		tasks, _ = filepath.Glob(fmt.Sprintf("/proc/%d/task/*/ns/net", d.cmd.Process.Pid))
		foreign = foreign[:0]
		for _, task := range tasks {
			if got, err := os.Readlink(task); err == nil && got != want {
				foreign = append(foreign, task+" in "+got)
			}
		}
		return len(tasks) > 0 && len(foreign) == 0
	})
	if !ok {
		t.Errorf("daemon threads outside the daemon's netns %s after every sandbox is gone: %v", want, foreign)
	}
	var fds []os.DirEntry
	fds, _ = os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
	t.Logf("%d threads, %d fds after 1,001 sandboxes came and went", len(tasks), len(fds))
}

func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
