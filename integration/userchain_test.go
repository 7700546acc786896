package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// readmeUserDrop is the README's example of a user rule, run here as written there.
const readmeUserDrop = "nft add rule inet berth user ip saddr 10.1.2.3 drop"

// TestUserChain: the README's `nft add rule inet berth user ip saddr 10.1.2.3 drop`
// blocks that sandbox's forwarded traffic (out to another host, and across to another
// network's published port) and nobody else's, and stays through the daemon's repair of
// its own tables, the firewall check and a restart.
func TestUserChain(t *testing.T) {
	checkReadme(t, readmeUserDrop)
	d := newDaemon(t)
	d.start()
	startOutside(t)
	d.must("network", "create", "--subnet", "10.1.2.0/24", "app")
	d.must("network", "create", "--subnet", "10.1.3.0/24", "back")
	d.must("sandbox", "create", "--name", "blocked", "--network", "app", "--ip", "10.1.2.3")
	d.must("sandbox", "create", "--name", "free", "--network", "app", "--ip", "10.1.2.4")
	d.must("sandbox", "create", "--name", "web", "--network", "back", "-p", "8080:7000")
	echoIn(t, "web", "/run/netns/web")
	ns := func(s string) string { return "/run/netns/" + s }
	outside := "192.0.2.2:7000"
	published := "10.1.2.1:8080" // app's gateway: DNATed to web on back, forwarded app -> back

	// Before the rule both get through, so the blocks below are the rule's doing.
	expect := func(when string, blockedToo bool) {
		t.Helper()
		for _, c := range []struct{ from, addr, want string }{
			{"free", outside, "outside 192.0.2.1"},
			{"free", published, "web 10.1.3.1"}, // masqueraded out of app
			{"blocked", outside, "outside 192.0.2.1"},
			{"blocked", published, "web 10.1.3.1"},
		} {
			want := c.want
			if c.from == "blocked" && !blockedToo {
				want = ""
			}
			if got := reach(t, ns(c.from), "tcp", c.addr); got != want {
				t.Errorf("%s: %s -> %s: %q; want %q", when, c.from, c.addr, got, want)
			}
		}
	}
	expect("without user rules", true)

	f := strings.Fields(readmeUserDrop)
	run(t, f...)
	expect("after "+readmeUserDrop, false)

	// Someone takes berth's own table away: the check repairs it, the user rule stays.
	run(t, "nft", "delete", "table", "ip", "berth")
	waitFor(t, 10*time.Second, "repair of table ip berth", func() error {
		if got := reach(t, ns("free"), "tcp", outside); got != "outside 192.0.2.1" {
			return fmt.Errorf("free -> outside: %q", got)
		}
		return nil
	})
	expect("after the repair", false)
	if !strings.Contains(d.log.String(), `what="table ip berth"`) {
		t.Errorf("daemon log has no repair of table ip berth:\n%s", d.log)
	}

	d.stop()
	d.start()
	expect("after a restart", false)
	if got := userChain(t); got != "ip saddr 10.1.2.3 drop" {
		t.Errorf("chain inet berth user after a restart: %q; want the README's rule", got)
	}
	// The check saw the user's rule as it ran (a change by another process): no repair.
	if strings.Count(d.log.String(), "firewall repaired") != 1 {
		t.Errorf("repairs in the daemon log: want only the one of table ip berth:\n%s", d.log)
	}
}

// checkReadme fails unless README.md has line as one of its lines.
func checkReadme(t *testing.T, line string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == line {
			return
		}
	}
	t.Errorf("README.md has no line %q", line)
}

// userChain is the rules of chain inet berth user, one line each, as nft prints them.
func userChain(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "chain", "inet", "berth", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain inet berth user: %v: %s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && l != "}" && !strings.HasPrefix(l, "table ") && !strings.HasPrefix(l, "chain ") {
			rules = append(rules, l)
		}
	}
	return strings.Join(rules, "\n")
}
