package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSandboxHostname: each sandbox has a UTS namespace of its own, pinned like its netns,
// which `berth exec` and `berth run` enter: `hostname` inside says --hostname (default: the
// sandbox name) and the domain name is --domainname, as Docker sets them; container:
// networking shares the other sandbox's; a restart keeps them, rm removes the pin, and the
// daemon's own hostname never changes (issue 14.8).
func TestSandboxHostname(t *testing.T) {
	d := newDaemon(t)
	hostBefore, _ := os.Hostname()
	d.start()
	d.must("network", "create", "--subnet", "10.63.0.0/24", "uts")
	d.must("sandbox", "create", "--name", "web", "--network", "uts", "--hostname", "www", "--domainname", "corp.example")
	d.must("sandbox", "create", "--name", "plain", "--network", "uts")
	d.must("sandbox", "create", "--name", "side", "--network", "container:web")
	names := func(sb string) string {
		t.Helper()
		return strings.TrimSpace(d.must("exec", sb, "--", "sh", "-c", "uname -n; cat /proc/sys/kernel/domainname"))
	}
	hostDomain, _ := os.ReadFile("/proc/sys/kernel/domainname") // kept without --domainname, as runc does
	want := map[string]string{"web": "www\ncorp.example", "plain": "plain\n" + strings.TrimSpace(string(hostDomain)), "side": "www\ncorp.example"}
	check := func(when string) {
		t.Helper()
		for sb, w := range want {
			if got := names(sb); got != w {
				t.Errorf("%s: exec %s: hostname/domainname %q, want %q", when, sb, got, w)
			}
		}
	}
	check("after create")
	if out := strings.TrimSpace(d.must("run", "--rm", "--network", "uts", "--hostname", "job", "--", "uname", "-n")); out != "job" {
		t.Errorf("run --hostname job: uname -n = %q", out)
	}
	web := d.inspectSandbox("web")
	var insp []struct{ UTSNamespace, Domainname string }
	if err := json.Unmarshal([]byte(d.must("sandbox", "inspect", "web")), &insp); err != nil {
		t.Fatal(err)
	}
	if len(insp) != 1 || insp[0].Domainname != "corp.example" || filepath.Base(insp[0].UTSNamespace) != web.ID {
		t.Errorf("inspect web: %+v, want Domainname corp.example and a UTS namespace named by the ID", insp)
	}
	uts := insp[0].UTSNamespace

	d.stop()
	d.start()
	check("after restart")
	d.kill()
	d.start()
	check("after kill -9")

	d.fails("conflicting options", "sandbox", "create", "--name", "x", "--network", "container:web", "--hostname", "x")
	d.fails(`invalid domainname "bad_dom!"`, "sandbox", "create", "--name", "x", "--domainname", "bad_dom!")
	d.must("sandbox", "rm", "-f", "side", "web", "plain")
	if _, err := os.Stat(uts); !os.IsNotExist(err) {
		t.Errorf("%s still there after rm: %v", uts, err)
	}
	if h, _ := os.Hostname(); h != hostBefore {
		t.Errorf("the daemon's hostname changed: %q -> %q", hostBefore, h)
	}
}
