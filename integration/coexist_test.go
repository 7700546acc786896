package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Docker's engine in the same netns as a berth daemon (issue 14.7). Docker's iptables
// FORWARD chain has policy DROP, and a drop in any base chain is final, so berth has to
// open its bridges in Docker's DOCKER-USER chain; and it has to notice when an admin's
// `nft flush ruleset` or `iptables -F` takes its rules away, and put them back.

// dockerEngine is Debian's dockerd (docker.io) run in the test's netns, as
// shared/tools/docker-oracle.sh runs it, but without an unshare of its own: the test binary
// is in a private netns and mount namespace already.
type dockerEngine struct {
	t    *testing.T
	dir  string
	sock string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// newDockerEngine prepares a dockerd with its own state under a temp dir; start runs it.
// Its cleanup stops it (by PID) and removes what it leaves in the netns by design (its
// tables and bridges, br_netfilter switched on), so the next test starts clean. Register
// it after newDaemon: cleanups run last-in first-out, and newDaemon's checks the netns
// is left as found.
func newDockerEngine(t *testing.T) *dockerEngine {
	t.Helper()
	for _, bin := range []string{"dockerd", "docker", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v (.ci/run and make deps install docker.io and iptables)", bin, err)
			}
			t.Skipf("%s not installed: %v", bin, err)
		}
	}
	// dockerd reads its daemon.json and writes its key.json in /etc/docker: a tmpfs there, in
	// the test's private mount namespace, keeps the machine's config out and its files in.
	if fi, err := os.Stat("/etc/docker"); err == nil && fi.IsDir() {
		if err := syscall.Mount("tmpfs", "/etc/docker", "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatalf("mount tmpfs on /etc/docker: %v", err)
		}
		t.Cleanup(func() { syscall.Unmount("/etc/docker", syscall.MNT_DETACH) }) // after the stop below
	}
	dir := t.TempDir()
	dk := &dockerEngine{t: t, dir: dir, sock: filepath.Join(dir, "docker.sock"), log: &bytes.Buffer{}}
	sysctls := []string{"/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
		"/proc/sys/net/ipv4/ip_forward"}
	saved := map[string][]byte{}
	for _, p := range sysctls {
		if b, err := os.ReadFile(p); err == nil {
			saved[p] = b
		}
	}
	t.Cleanup(func() {
		dk.stop()
		for _, tbl := range []string{"ip filter", "ip nat", "ip6 filter", "ip6 nat"} {
			exec.Command("nft", append([]string{"delete", "table"}, strings.Fields(tbl)...)...).Run()
		}
		exec.Command("ip", "link", "del", "docker0").Run() // its br-* go with berth's (wipeBerthObjects)
		for p, b := range saved {
			os.WriteFile(p, b, 0o644)
		}
		if t.Failed() {
			t.Logf("dockerd log:\n%s", dk.log)
		}
	})
	return dk
}

func (dk *dockerEngine) start() {
	dk.t.Helper()
	dk.cmd = exec.Command("dockerd", "--data-root", filepath.Join(dk.dir, "data"), "--exec-root", filepath.Join(dk.dir, "exec"),
		"--pidfile", filepath.Join(dk.dir, "dockerd.pid"), "-H", "unix://"+dk.sock, "--storage-driver=vfs",
		"--containerd-namespace", "berth-coexist", "--log-level", "warn")
	dk.cmd.Stdout, dk.cmd.Stderr = dk.log, dk.log
	// Its own process group, so that ending it (and the containerd it starts) is by PID.
	dk.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := dk.cmd.Start(); err != nil {
		dk.t.Fatalf("start dockerd: %v", err)
	}
	done := make(chan struct{})
	dk.done = done
	go func() { dk.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := dk.docker("info", "--format", "{{.ServerVersion}}"); err == nil {
			return
		}
		select {
		case <-done:
			dk.t.Fatalf("dockerd exited at start:\n%s", dk.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
	dk.t.Fatalf("dockerd did not answer within 20s:\n%s", dk.log)
}

// stop ends dockerd with SIGTERM (it stops its containerd), SIGKILL after 10 s.
func (dk *dockerEngine) stop() {
	if dk.cmd == nil {
		return
	}
	dk.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-dk.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-dk.cmd.Process.Pid, syscall.SIGKILL)
		<-dk.done
	}
	dk.cmd = nil
}

func (dk *dockerEngine) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + dk.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// cli runs iptables or nft, failing the test on error.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// until retries check every 100 ms until it returns nil or within is over.
func until(within time.Duration, check func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCoexistDocker: a berth daemon and Docker's engine in one netns. berth's sandboxes
// reach a host beyond the daemon's netns and each other although Docker's FORWARD policy
// is DROP, Docker still works, and what `nft flush ruleset`, a dockerd restart and
// `iptables -F` take away is put back within the check interval, with a log line saying
// what was repaired.
func TestCoexistDocker(t *testing.T) {
	d := newDaemon(t)
	dk := newDockerEngine(t)
	// Docker sets the FORWARD policy to DROP when it turns forwarding on itself (an earlier
	// test's daemon may have turned it on in this netns).
	cli(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
	dk.start()
	d.start("--firewall-check-interval", "1s")
	startOutside(t)
	if pol := cli(t, "iptables", "-S", "FORWARD"); !strings.Contains(pol, "-P FORWARD DROP") {
		t.Fatalf("Docker's FORWARD chain:\n%s\nwant policy DROP", pol)
	}
	d.must("network", "create", "--subnet", "10.60.0.0/24", "app")
	d.must("sandbox", "create", "--name", "c1", "--network", "app")
	d.must("sandbox", "create", "--name", "c2", "--network", "app")
	br := "br-" + d.must("network", "inspect", "-f", "{{.ID}}", "app")[:12]
	c2 := d.ip("c2", "app")
	works := func() error {
		if err := ping(t, "c1", "192.0.2.2"); err != nil {
			return err
		}
		return ping(t, "c1", c2)
	}

	// 1. Docker's ruleset present: forwarded traffic and traffic within the bridge pass.
	if err := until(3*time.Second, works); err != nil {
		t.Fatalf("with Docker's ruleset: %v\n%s", err, cli(t, "nft", "list", "ruleset"))
	}
	user := cli(t, "iptables", "-S", "DOCKER-USER")
	for _, want := range []string{"-A DOCKER-USER -i " + br + " -m comment --comment berth -j ACCEPT",
		"-A DOCKER-USER -o " + br + " -m comment --comment berth -j ACCEPT", "-A DOCKER-USER -j RETURN"} {
		if !strings.Contains(user, want) {
			t.Errorf("iptables -S DOCKER-USER:\n%s\nwant %q", user, want)
		}
	}
	// Docker still works beside berth's rules (it runs iptables -C and -I in its chains).
	if _, err := dk.docker("network", "create", "dnet"); err != nil {
		t.Errorf("docker network create with berth's rules in DOCKER-USER: %v", err)
	}
	if _, err := dk.docker("network", "rm", "dnet"); err != nil {
		t.Errorf("docker network rm: %v", err)
	}

	// 2. nft flush ruleset: berth's tables and rules come back. Docker's are gone too (so
	// nothing drops), but so is berth's masquerade: the outside host has no route back.
	cli(t, "nft", "flush", "ruleset")
	if err := until(5*time.Second, func() error {
		if out, err := exec.Command("nft", "list", "table", "ip", "berth").CombinedOutput(); err != nil {
			return fmt.Errorf("table ip berth: %v: %s", err, out)
		}
		return works()
	}); err != nil {
		t.Fatalf("after nft flush ruleset: %v", err)
	}

	// One table deleted, or emptied of its rules (chains and sets stay): rebuilt.
	for _, cmd := range [][]string{{"nft", "delete", "table", "ip", "berth"}, {"nft", "flush", "table", "ip", "berth"}} {
		cli(t, cmd...)
		if err := until(5*time.Second, func() error {
			if out := nftTable(t); !strings.Contains(out, "masquerade") {
				return fmt.Errorf("table ip berth without its masquerade:\n%s", out)
			}
			return works()
		}); err != nil {
			t.Fatalf("after %s: %v", strings.Join(cmd, " "), err)
		}
	}

	// A dockerd restart makes its chains anew, without berth's rules: they come back.
	dk.stop()
	dk.start()
	if err := until(5*time.Second, func() error {
		if u := cli(t, "iptables", "-S", "DOCKER-USER"); !strings.Contains(u, "-i "+br+" ") {
			return fmt.Errorf("DOCKER-USER without berth's rules:\n%s", u)
		}
		return works()
	}); err != nil {
		t.Fatalf("after a dockerd restart: %v\n%s", err, cli(t, "iptables", "-S"))
	}
	// Docker sets the policy DROP only when it turned forwarding on itself: not this time.
	cli(t, "iptables", "-P", "FORWARD", "DROP")
	if err := works(); err != nil {
		t.Errorf("after a dockerd restart, FORWARD policy DROP: %v", err)
	}

	// 3. iptables -F DOCKER-USER: berth's rules are back, and Docker's return stays gone
	// (berth adds only its own). Then iptables -F FORWARD (policy DROP stays, the jump to
	// DOCKER-USER goes): berth's rules move to FORWARD.
	cli(t, "iptables", "-F", "DOCKER-USER")
	if err := until(5*time.Second, func() error {
		if u := cli(t, "iptables", "-S", "DOCKER-USER"); !strings.Contains(u, "-i "+br+" ") {
			return fmt.Errorf("DOCKER-USER without berth's rules:\n%s", u)
		}
		return works()
	}); err != nil {
		t.Fatalf("after iptables -F DOCKER-USER: %v", err)
	}
	cli(t, "iptables", "-F", "FORWARD")
	if err := until(5*time.Second, func() error {
		if f := cli(t, "iptables", "-S", "FORWARD"); !strings.Contains(f, "-i "+br+" -m comment --comment berth -j ACCEPT") {
			return fmt.Errorf("FORWARD without berth's rules:\n%s", f)
		}
		return works()
	}); err != nil {
		t.Fatalf("after iptables -F FORWARD: %v", err)
	}
	if u := cli(t, "iptables", "-S", "DOCKER-USER"); strings.Contains(u, "berth") {
		t.Errorf("berth's rules left in DOCKER-USER, which nothing jumps to:\n%s", u)
	}

	// dockerd restarts with berth's rules in its chains: it starts (iptables parses them),
	// puts its jump to DOCKER-USER back, and berth's rules follow it there.
	dk.stop()
	dk.start()
	if err := until(5*time.Second, func() error {
		if u := cli(t, "iptables", "-S", "DOCKER-USER"); !strings.Contains(u, "-o "+br+" ") {
			return fmt.Errorf("DOCKER-USER without berth's rules:\n%s", u)
		}
		if f := cli(t, "iptables", "-S", "FORWARD"); strings.Contains(f, "berth") {
			return fmt.Errorf("berth's rules still in FORWARD, which jumps to DOCKER-USER again:\n%s", f)
		}
		return works()
	}); err != nil {
		t.Fatalf("after a dockerd restart with berth's rules in place: %v", err)
	}
	// A network removed: its rules go, berth0's stay.
	d.must("sandbox", "rm", "-f", "c1", "c2")
	d.must("network", "rm", "app")
	if all := cli(t, "iptables", "-S"); strings.Contains(all, br) || !strings.Contains(all, "-i berth0 -m comment --comment berth -j ACCEPT") {
		t.Errorf("iptables -S after network rm app:\n%s\nwant no rule for %s, berth0's kept", all, br)
	}

	// The log says what was repaired (read once the daemon has stopped writing it).
	d.stop()
	log := d.log.String()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "firewall repaired") {
			t.Log(line)
		}
	}
	// berth0 and br: 4 rules.
	for _, want := range []string{"table ip berth", "rules of chain ip berth postrouting: 0, want ", "ip filter DOCKER-USER: 4 accept rules added", "ip filter FORWARD: 4 accept rules added"} {
		if !strings.Contains(log, "firewall repaired") || !strings.Contains(log, want) {
			t.Errorf("daemon log has no repair of %q:\n%s", want, log)
		}
	}
	d.start() // for the cleanup's removal of networks and sandboxes
}
