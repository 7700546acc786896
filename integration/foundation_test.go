package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestSeedScenario walks the user story of the foundation issue with the real kernel.
func TestSeedScenario(t *testing.T) {
	d := newDaemon(t)
	d.start()
	appID := d.must("network", "create", "app")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(appID) {
		t.Fatalf("network create printed %q, want a 64-hex id", appID)
	}
	if err := exec.Command("ip", "link", "show", "br-"+appID[:12]).Run(); err != nil {
		t.Fatalf("bridge br-%s missing: %v", appID[:12], err)
	}
	d.must("network", "create", "--subnet", "172.30.0.0/24", "--gateway", "172.30.0.1", "--ip-range", "172.30.0.128/25", "--internal", "back")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	webIP := d.ip("web", "app")
	prefix := webIP[:strings.LastIndex(webIP, ".")]
	d.must("sandbox", "create", "--name", "db", "--network", "app", "--ip", prefix+".50", "--network-alias", "database")
	if got := d.ip("db", "app"); got != prefix+".50" {
		t.Errorf("db address = %s, want %s.50", got, prefix)
	}
	if out, e, err := d.run("exec", "db", "--", "ping", "-c1", "-W1", webIP); err != nil {
		t.Errorf("berth exec db -- ping %s: %v\n%s%s", webIP, err, out, e)
	}
	if err := ping(t, "db", webIP); err != nil {
		t.Error(err)
	}
	// A second network at runtime: eth1 inside web, on back's range.
	d.must("network", "connect", "--alias", "api", "back", "web")
	out, err := inNS(t, "web", "ip", "-o", "-4", "addr", "show", "dev", "eth1")
	if err != nil || !strings.Contains(out, "172.30.0.128/24") {
		t.Errorf("web eth1: %v %s, want 172.30.0.128/24 (start of --ip-range)", err, out)
	}
	if s := d.inspectSandbox("web"); !contains(s.Networks["back"].Aliases, "api") {
		t.Errorf("inspect web: back aliases = %v, want api", s.Networks["back"].Aliases)
	}
	// Isolation: a sandbox only on back cannot reach app's sandboxes; web (on both) reaches both.
	d.must("sandbox", "create", "--name", "x", "--network", "back")
	if err := ping(t, "x", webIP); err == nil {
		t.Errorf("x (back only) reached web's app address %s", webIP)
	}
	if err := ping(t, "web", d.ip("x", "back")); err != nil {
		t.Error(err)
	}
	// Internal network: no default route.
	if out, _ := inNS(t, "x", "ip", "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Errorf("sandbox on an internal network has a default route: %s", out)
	}
	if out, _ := inNS(t, "web", "ip", "route", "show", "default"); !strings.Contains(out, "via "+prefix+".1 dev eth0") {
		t.Errorf("web default route = %q, want via %s.1 dev eth0", out, prefix)
	}
	// network inspect is shaped like docker's.
	var nets []map[string]any
	if err := json.Unmarshal([]byte(d.must("network", "inspect", "app")), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("network inspect app: %v", err)
	}
	for _, k := range []string{"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Containers", "Options", "Labels"} {
		if _, ok := nets[0][k]; !ok {
			t.Errorf("network inspect lacks %q", k)
		}
	}
	if c, _ := nets[0]["Containers"].(map[string]any); len(c) != 2 {
		t.Errorf("network inspect app: %d containers, want 2", len(c))
	}
	// Disconnect removes eth1 and the address.
	d.must("network", "disconnect", "back", "web")
	if _, err := inNS(t, "web", "ip", "link", "show", "eth1"); err == nil {
		t.Errorf("eth1 still in web after disconnect")
	}
	d.must("sandbox", "rm", "-f", "web", "db", "x")
	d.must("network", "rm", "app", "back")
	if _, err := os.Stat("/run/netns/web"); !os.IsNotExist(err) {
		t.Errorf("/run/netns/web still exists after rm: %v", err)
	}
	if err := exec.Command("ip", "link", "show", "br-"+appID[:12]).Run(); err == nil {
		t.Errorf("bridge of app still exists after network rm")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestNetworkModes(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("sandbox", "create", "--name", "base")
	d.must("sandbox", "create", "--name", "nonet", "--network", "none")
	d.must("sandbox", "create", "--name", "hostnet", "--network", "host")
	d.must("sandbox", "create", "--name", "joined", "--network", "container:base")
	out, err := inNS(t, "nonet", "ip", "-o", "link", "show")
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") || !strings.Contains(out, "UP") {
		t.Errorf("none mode: links %q (%v), want lo only, up", out, err)
	}
	if nsInode(t, "/run/netns/hostnet") != nsInode(t, "/proc/self/ns/net") {
		t.Errorf("host mode: netns differs from the daemon's")
	}
	if nsInode(t, "/run/netns/joined") != nsInode(t, "/run/netns/base") {
		t.Errorf("container mode: joined does not share base's netns")
	}
	if err := ping(t, "joined", d.ip("base", "bridge")); err != nil {
		t.Error(err)
	}
	d.fails("joined", "sandbox", "rm", "-f", "base")
	d.must("sandbox", "rm", "-f", "joined", "base", "nonet", "hostnet")
}

// TestRestartKeepsEverything: a graceful restart and a kill -9 change nothing a user sees.
func TestRestartKeepsEverything(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.77.0.0/24", "app")
	d.must("sandbox", "create", "--name", "a", "--network", "app", "--network-alias", "alpha", "--dns", "10.77.0.53")
	d.must("sandbox", "create", "--name", "b", "--network", "app")
	d.must("network", "connect", "bridge", "b")
	netBefore := d.must("network", "inspect", "app", "bridge")
	sbBefore := d.must("sandbox", "inspect", "a", "b")
	inodeA := nsInode(t, "/run/netns/a")
	for _, how := range []string{"graceful", "kill -9"} {
		if how == "graceful" {
			d.stop()
		} else {
			d.kill()
		}
		d.start()
		if got := d.must("network", "inspect", "app", "bridge"); got != netBefore {
			t.Errorf("%s restart changed network inspect:\n%s\nwant\n%s", how, got, netBefore)
		}
		if got := d.must("sandbox", "inspect", "a", "b"); got != sbBefore {
			t.Errorf("%s restart changed sandbox inspect:\n%s\nwant\n%s", how, got, sbBefore)
		}
		if err := ping(t, "a", d.ip("b", "app")); err != nil {
			t.Errorf("after %s restart: %v", how, err)
		}
		if nsInode(t, "/run/netns/a") != inodeA {
			t.Errorf("after %s restart: sandbox a's netns was recreated", how)
		}
	}
	// A new sandbox after the restarts never gets an address already held.
	d.must("sandbox", "create", "--name", "c", "--network", "app")
	seen := map[string]string{}
	for _, s := range []string{"a", "b", "c"} {
		ip := d.ip(s, "app")
		if o, dup := seen[ip]; dup {
			t.Errorf("address %s held by both %s and %s", ip, o, s)
		}
		seen[ip] = s
	}
}

// TestCrashReconcile: after kill -9, changes made behind the daemon's back are reconciled.
func TestCrashReconcile(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.78.0.0/24", "app")
	d.must("sandbox", "create", "--name", "a", "--network", "app")
	d.must("sandbox", "create", "--name", "b", "--network", "app")
	bIP := d.ip("b", "app")
	a := d.inspectSandbox("a")
	d.kill()
	// Behind its back: b's netns is deleted, a's veth is deleted, an orphan veth and bridge
	// with berth's names appear, and a foreign bridge appears (must be left alone).
	syscall.Unmount("/run/netns/b", syscall.MNT_DETACH)
	os.Remove("/run/netns/b")
	vethOfA := hostVeth(a, "app")
	run(t, "ip", "link", "del", vethOfA)
	run(t, "ip", "link", "add", "bthdeadbeef", "type", "veth", "peer", "name", "tmpdead0")
	run(t, "ip", "link", "add", "br-0123456789ab", "type", "bridge")
	run(t, "ip", "link", "add", "foreignbr", "type", "bridge")
	defer exec.Command("ip", "link", "del", "foreignbr").Run()
	d.start()
	// By name: "b" alone may also be a prefix of a's ID, which inspect accepts as well.
	if out, _, err := d.run("sandbox", "inspect", "-f", "{{.Name}}", "b"); err == nil && strings.TrimSpace(out) == "b" {
		t.Errorf("sandbox b (netns deleted) still listed after restart")
	}
	for _, l := range []string{"bthdeadbeef", "br-0123456789ab"} {
		if exec.Command("ip", "link", "show", l).Run() == nil {
			t.Errorf("orphan %s not removed", l)
		}
	}
	if exec.Command("ip", "link", "show", "foreignbr").Run() != nil {
		t.Errorf("foreign bridge removed")
	}
	if exec.Command("ip", "link", "show", vethOfA).Run() != nil {
		t.Errorf("a's veth %s not recreated", vethOfA)
	}
	d.must("sandbox", "create", "--name", "c", "--network", "app")
	if err := ping(t, "c", d.ip("a", "app")); err != nil {
		t.Errorf("a unreachable after reconcile: %v", err)
	}
	// b's address was released: with the lowest-free policy c reuses it.
	if got := d.ip("c", "app"); got != bIP {
		t.Errorf("c got %s, want b's released address %s", got, bIP)
	}
}

// hostVeth is the host end of a sandbox's endpoint on a network: bth + 8 hex of the endpoint ID.
func hostVeth(s sandboxJSON, network string) string {
	return "bth" + s.Networks[network].EndpointID[:8]
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestDamagedState: a state file that does not decode stops the daemon with one clear
// error and is left as it was (never a silent reset).
func TestDamagedState(t *testing.T) {
	d := newDaemon(t)
	state := filepath.Join(d.root, "state.db")
	junk := []byte(strings.Repeat("not a bbolt file\n", 512))
	if err := os.WriteFile(state, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(d.bin, "daemon", "--root", d.root, "--socket", d.sock, "--resolv-conf", d.resolv).CombinedOutput()
	if err == nil || !strings.Contains(string(out), state) {
		t.Errorf("daemon on a damaged state: %v, %q; want an error naming %s", err, out, state)
	}
	if got, _ := os.ReadFile(state); string(got) != string(junk) {
		t.Errorf("damaged state file was rewritten")
	}
}

func TestSecondDaemonFails(t *testing.T) {
	d := newDaemon(t)
	d.start()
	out, err := exec.Command(d.bin, "daemon", "--root", d.root, "--socket", d.sock+"2", "--resolv-conf", d.resolv).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "locked") {
		t.Errorf("second daemon on the same root: %v, output %q; want a fast failure saying the state is locked", err, out)
	}
	d.must("network", "ls")
}

// TestBadInput: every bad input gets one line naming the field and changes nothing.
func TestBadInput(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.90.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app", "--ip", "10.90.0.10")
	state := func() string {
		return d.must("network", "inspect", "app", "bridge") + d.must("sandbox", "ls") + d.must("network", "ls")
	}
	before, kernelBefore, filesBefore := state(), kernelState(t), filesState(t)
	cases := []struct {
		want string
		args []string
	}{
		{"name", []string{"network", "create", "a/b"}},
		{"name", []string{"network", "create", "has space"}},
		{"name", []string{"network", "create", strings.Repeat("n", 64)}},
		{"subnet", []string{"network", "create", "--subnet", "10.0.0.0/33", "n1"}},
		{"subnet", []string{"network", "create", "--subnet", "10.90.0.128/25", "n1"}},
		{"subnet", []string{"network", "create", "--subnet", "10.1.0.0/31", "n1"}},
		{"subnet", []string{"network", "create", "--subnet", "10.1.0.0/32", "n1"}},
		{"gateway", []string{"network", "create", "--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1", "n1"}},
		{"opt", []string{"network", "create", "-o", "com.docker.network.bridge.name=waytoolongbridgename", "n1"}},
		{"opt", []string{"network", "create", "-o", "novalue", "n1"}},
		{"already exists", []string{"network", "create", "app"}},
		{"name", []string{"sandbox", "create", "--name", "../etc", "--network", "app"}},
		{"name", []string{"sandbox", "create", "--name", "-x", "--network", "app"}},
		{"in use by sandbox web", []string{"sandbox", "create", "--name", "s", "--network", "app", "--ip", "10.90.0.10"}},
		{"not in subnet", []string{"sandbox", "create", "--name", "s", "--network", "app", "--ip", "10.91.0.10"}},
		{"already in use", []string{"sandbox", "create", "--name", "web", "--network", "app"}},
		{"not found", []string{"sandbox", "create", "--name", "s", "--network", "nosuch"}},
		{"alias", []string{"sandbox", "create", "--name", "s", "--network-alias", "x"}},
		{"dns", []string{"sandbox", "create", "--name", "s", "--dns", "1.2.3"}},
		{"add-host", []string{"sandbox", "create", "--name", "s", "--add-host", "nocolon"}},
		{"not found", []string{"network", "rm", "nosuch"}},
		{"active endpoints", []string{"network", "rm", "app"}},
		{"pre-defined", []string{"network", "rm", "bridge"}},
		{"not found", []string{"sandbox", "rm", "nosuch"}},
		{"already connected", []string{"network", "connect", "app", "web"}},
		{"name", []string{"sandbox", "rename", "web", "bad/name"}},
	}
	for _, tc := range cases {
		d.fails(tc.want, tc.args...)
	}
	if after := state(); after != before {
		t.Errorf("bad input changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if after := kernelState(t); after != kernelBefore {
		t.Errorf("bad input changed the kernel:\nbefore:\n%s\nafter:\n%s", kernelBefore, after)
	}
	if after := filesState(t); after != filesBefore {
		t.Errorf("bad input changed the generated files:\nbefore:\n%s\nafter:\n%s", filesBefore, after)
	}
}

// filesState is every generated file under /etc/netns with its content, and the ruleset.
func filesState(t *testing.T) string {
	var b strings.Builder
	filepath.WalkDir("/etc/netns", func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			c, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "== %s\n%s", p, c)
		}
		return nil
	})
	return b.String() + nftRuleset()
}

func kernelState(t *testing.T) string {
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	addrs, _ := exec.Command("ip", "-o", "addr", "show").Output()
	ns, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range ns {
		names = append(names, e.Name())
	}
	// IPv6 duplicate address detection flips link-local addresses from "tentative" on its
	// own schedule; that is the kernel's doing, not berth's.
	return string(out) + strings.ReplaceAll(string(addrs), " tentative", "") + strings.Join(names, ",")
}
