package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"berth/netmgr"
)

// TestCrashPoints kills the daemon (SIGKILL, from inside) after every step of every change
// and checks that a restart leaves a consistent world: each sandbox fully attached or cleanly
// absent, no address held twice, no berth device, pin or file without a record.
func TestCrashPoints(t *testing.T) {
	ops := map[string][]string{
		"network-create": {"network", "create", "--subnet", "10.82.0.0/24", "n2"},
		"network-rm":     {"network", "rm", "spare"},
		"sandbox-create": {"sandbox", "create", "--name", "newbox", "--network", "app", "--network-alias", "bee"},
		"connect":        {"network", "connect", "other", "left"},
		"disconnect":     {"network", "disconnect", "app", "right"},
		"sandbox-rm":     {"sandbox", "rm", "-f", "left"},
		"rename":         {"sandbox", "rename", "left", "left2"},
	}
	for _, step := range netmgr.CrashPoints {
		op := ops[strings.SplitN(step, ":", 2)[0]]
		if op == nil {
			t.Fatalf("no operation for crash point %s", step)
		}
		t.Run(step, func(t *testing.T) {
			d := newDaemon(t)
			d.start()
			d.must("network", "create", "--subnet", "10.80.0.0/24", "app")
			d.must("network", "create", "--subnet", "10.81.0.0/24", "other")
			d.must("network", "create", "--subnet", "10.83.0.0/24", "spare")
			// Sandbox names that dig cannot mistake for query types or classes.
			d.must("sandbox", "create", "--name", "left", "--network", "app")
			d.must("sandbox", "create", "--name", "right", "--network", "app")
			d.must("network", "connect", "other", "right")
			d.stop()
			d.env = []string{"BERTH_CRASH_AT=" + step}
			d.start()
			if _, _, err := d.run(op...); err == nil {
				t.Errorf("berth %s succeeded although the daemon was to crash at %s", strings.Join(op, " "), step)
			}
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("daemon did not crash at %s", step)
			}
			d.cmd = nil
			d.env = nil
			d.start()
			checkConsistent(t, d)
		})
	}
}

type networkJSON struct {
	Name    string
	ID      string `json:"Id"`
	Options map[string]string
	IPAM    struct{ Config []struct{ Subnet string } }
}

// checkConsistent compares what the daemon says with what the kernel and the files hold.
func checkConsistent(t *testing.T, d *daemon) {
	t.Helper()
	var nets []networkJSON
	ids := strings.Fields(d.must("network", "ls", "-q"))
	if err := json.Unmarshal([]byte(d.must(append([]string{"network", "inspect"}, ids...)...)), &nets); err != nil {
		t.Fatal(err)
	}
	wantLinks := map[string]bool{}
	for _, n := range nets {
		if br := n.Options["com.docker.network.bridge.name"]; br != "" {
			wantLinks[br] = true
		}
	}
	var sbs []sandboxJSON
	if ids := strings.Fields(d.must("sandbox", "ls", "-q")); len(ids) > 0 {
		if err := json.Unmarshal([]byte(d.must(append([]string{"sandbox", "inspect"}, ids...)...)), &sbs); err != nil {
			t.Fatal(err)
		}
	}
	var wantNS []string
	held := map[string]string{}
	for _, sb := range sbs {
		wantNS = append(wantNS, sb.Name)
		for netName, ep := range sb.Networks {
			veth := "bth" + ep.EndpointID[:8]
			wantLinks[veth] = true
			if o, dup := held[ep.IPAddress]; dup {
				t.Errorf("address %s held by %s and %s", ep.IPAddress, o, sb.Name)
			}
			held[ep.IPAddress] = sb.Name
			out, err := inNS(t, sb.Name, "ip", "-o", "-4", "addr", "show", "dev", ep.InterfaceName)
			if err != nil || !strings.Contains(out, ep.IPAddress+"/") {
				t.Errorf("sandbox %s: %s on %s not in the kernel: %v %s", sb.Name, ep.IPAddress, netName, err, out)
			}
		}
		if r := dig(t, sb.Name, sb.Name); len(r.values("A")) == 0 {
			t.Errorf("sandbox %s: its own name does not resolve:\n%s", sb.Name, r.raw)
		}
	}
	// Kernel: every berth-named device has a record and every record its device.
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	have := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		if name == "berth0" || strings.HasPrefix(name, "br-") || strings.HasPrefix(name, "bth") {
			have[name] = true
		}
	}
	for l := range wantLinks {
		if !have[l] {
			t.Errorf("device %s of a record is missing", l)
		}
	}
	for l := range have {
		if !wantLinks[l] {
			t.Errorf("device %s has no record (orphan)", l)
		}
	}
	sort.Strings(wantNS)
	if got := dirNames("/run/netns"); strings.Join(got, ",") != strings.Join(wantNS, ",") {
		t.Errorf("/run/netns = %v, sandboxes = %v", got, wantNS)
	}
	if got := dirNames("/etc/netns"); strings.Join(got, ",") != strings.Join(wantNS, ",") {
		t.Errorf("/etc/netns = %v, sandboxes = %v", got, wantNS)
	}
	if len(sbs) >= 2 {
		if err := ping(t, sbs[0].Name, sbs[1].Networks["app"].IPAddress); err != nil && sbs[1].Networks["app"].IPAddress != "" {
			t.Error(err)
		}
	}
}

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Base(e.Name()))
	}
	sort.Strings(out)
	return out
}
