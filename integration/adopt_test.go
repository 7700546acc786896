package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestAdoptNetNS: `sandbox create --netns PATH` wires a namespace someone else made (a
// process's /proc/PID/ns/net, as runc or containerd leave it), and rm unwires it without
// destroying it.
func TestAdoptNetNS(t *testing.T) {
	d, _ := dnsSetup(t)
	// The "container": a process in a network namespace of its own.
	proc := exec.Command("unshare", "--net", "sleep", "60")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { proc.Process.Kill(); proc.Wait() }()
	nsPath := fmt.Sprintf("/proc/%d/ns/net", proc.Process.Pid)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) { // wait until unshare has switched namespaces
		a, _ := os.Readlink(nsPath)
		b, _ := os.Readlink("/proc/self/ns/net")
		if a != b {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.must("sandbox", "create", "--name", "ctr", "--netns", nsPath, "--network", "app", "--network-alias", "box")
	out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), d.ip("ctr", "app")) {
		t.Fatalf("adopted netns has no eth0 with its address: %v %s", err, out)
	}
	if r := dig(t, "web", "box"); len(r.values("A")) != 1 {
		t.Errorf("alias of the adopted sandbox does not resolve: %v", r.raw)
	}
	if out, err := exec.Command("nsenter", "--net="+nsPath, "dig", "@127.0.0.11", "+short", "web").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != d.ip("web", "app") {
		t.Errorf("dig from inside the adopted netns: %v %q", err, out)
	}
	// Bad adoptions.
	d.fails("netns", "sandbox", "create", "--name", "x1", "--netns", "/proc/self/ns/net", "--network", "app")
	d.fails("netns", "sandbox", "create", "--name", "x2", "--netns", "/etc/hostname", "--network", "app")
	d.fails("netns", "sandbox", "create", "--name", "x3", "--netns", nsPath, "--network", "app")
	// rm without -f works (the processes inside are the owner's) and leaves the netns.
	d.must("sandbox", "rm", "ctr")
	if _, err := os.Stat(nsPath); err != nil {
		t.Fatalf("netns of the process is gone: %v", err)
	}
	out, _ = exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "link", "show").CombinedOutput()
	if strings.Contains(string(out), "eth0") || !strings.Contains(string(out), "lo:") {
		t.Errorf("after rm the adopted netns still has eth0 or lost lo:\n%s", out)
	}
}
