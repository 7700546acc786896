package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/api"
	"berth/internal/etcdtest"
	"berth/internal/nsutil"
	"berth/internal/testns"
)

// The multi-host rig (issue 16): simulated hosts inside the test's private netns. The test's
// netns is the underlay: a bridge ul0 (10.99.0.1/24) with etcd and an upstream nameserver
// listening on 10.99.0.1. Each host is a long-lived process in a net+mount namespace of its
// own (private tmpfs on /run/netns, /etc/netns and /run/berth, lo up, eth0 = a veth into
// ul0 with 10.99.0.1N/24 and a default route via 10.99.0.1), and its berth daemon runs in
// those namespaces through nsenter. Each daemon's API socket lives in the test's temp dir,
// so the test drives every host's daemon from its own namespace.

const (
	underlayBridge = "ul0"
	underlayGW     = "10.99.0.1"
	// leaseTTL is the TTL of a host's etcd lease (the contract's hosts/HOSTID key): a
	// killed host's endpoints go when it expires.
	leaseTTL = 10 * time.Second
)

// rig is one multi-host setup: the underlay, etcd, the upstream nameserver and the hosts.
type rig struct {
	t         *testing.T
	etcd      *etcdtest.Server
	hosts     []*host
	clustered bool // the berth binary has --cluster-store (issue 16 has landed in it)
}

// host is one simulated machine and its berth daemon.
type host struct {
	t    *testing.T
	r    *rig
	name string // A, B, C ...
	addr string // underlay address, 10.99.0.1N
	veth string // the underlay side of its eth0, in the test's netns
	pid  int    // the process holding its namespaces
	cli  *daemon

	holder     *exec.Cmd
	holderPipe io.WriteCloser // the holder (cat) exits when this closes, or when the test process dies

	dmu   sync.Mutex // guards following
	dcmd  *exec.Cmd  // the running daemon (nsenter execs it: this is the daemon's PID), or nil
	ddone chan struct{}
	log   *syncBuffer // the daemon's output over all its runs
}

// clusterFlagOnce caches whether the berth binary knows --cluster-store.
var (
	clusterFlagOnce sync.Once
	clusterFlag     bool
)

func hasClusterFlag(t *testing.T) bool {
	clusterFlagOnce.Do(func() {
		out, _ := exec.Command(berthBin(t), "daemon", "--help").CombinedOutput()
		clusterFlag = strings.Contains(string(out), "--cluster-store")
	})
	return clusterFlag
}

// newRig builds the underlay, starts etcd and the upstream on it, and n hosts with their
// daemons running (with the cluster flags once the binary has them). Everything it makes
// goes when the test ends, and the test's netns is checked to be left as found.
func newRig(t *testing.T, n int) *rig {
	t.Helper()
	testns.Require(t)
	requireTools(t, "nsenter", "unshare", "ip", "dig", "ping")
	r := &rig{t: t, clustered: hasClusterFlag(t)}
	if !r.clustered {
		t.Logf("berth has no --cluster-store yet: the daemons run without it")
	}
	before := testns.KernelSnapshot(t)
	t.Cleanup(func() {
		if after := testns.KernelSnapshot(t); after != before {
			t.Errorf("test netns not left as found:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	run(t, "ip", "link", "add", underlayBridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", underlayBridge).Run() })
	run(t, "ip", "addr", "add", underlayGW+"/24", "dev", underlayBridge)
	run(t, "ip", "link", "set", underlayBridge, "up")
	r.etcd = etcdtest.Start(t, etcdtest.WithHost(netip.MustParseAddr(underlayGW)))
	startUpstream(t, false, underlayGW+":53")
	for i := range n {
		r.hosts = append(r.hosts, r.newHost(string(rune('A'+i)), i+1))
	}
	// Each host reaches etcd before its daemon starts: a new veth's first packets can be
	// lost while its ports come up, and a daemon whose first etcd connection waits out TCP's
	// SYN retransmits (seen in CI: host A registered 3 s late, past the 3 s request timeout,
	// and the test's first overlay create failed) is testing the rig, not berth.
	for _, h := range r.hosts {
		waitFor(t, 15*time.Second, "host "+h.name+" reaches etcd", func() error {
			return etcdHealthFrom(h.netPath(), r.etcd.Addr())
		})
	}
	for _, h := range r.hosts {
		h.start()
	}
	return r
}

// newHost makes host name with underlay address 10.99.0.(10+num); its daemon is not started.
func (r *rig) newHost(name string, num int) *host {
	t := r.t
	t.Helper()
	root := t.TempDir()
	h := &host{t: t, r: r, name: name, addr: fmt.Sprintf("10.99.0.%d", 10+num),
		veth: "ul" + name, log: &syncBuffer{}}
	h.cli = &daemon{t: t, bin: berthBin(t), root: filepath.Join(root, "state"),
		sock: filepath.Join(root, "berth.sock"), resolv: filepath.Join(root, "resolv.conf")}
	if err := os.WriteFile(h.cli.resolv, []byte("nameserver "+underlayGW+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// cat on a pipe rather than `sleep infinity`: it also ends if the test process dies
	// without running its cleanups (a timeout), so no host outlives the test binary.
	h.holder = exec.Command("unshare", "--net", "--mount", "--propagation", "private", "cat")
	var err error
	if h.holderPipe, err = h.holder.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.holder.Start(); err != nil {
		t.Fatalf("host %s: %v", name, err)
	}
	h.pid = h.holder.Process.Pid
	t.Cleanup(h.cleanup)
	// unshare execs cat once the namespaces exist: wait for that, so that nsenter enters
	// the new ones and not the test's.
	waitFor(t, 5*time.Second, "host "+name+" namespaces", func() error {
		if same, err := nsutil.Same(fmt.Sprintf("/proc/%d/ns/net", h.pid), "/proc/self/ns/net"); err != nil || same {
			return fmt.Errorf("netns not yet its own (%v)", err)
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", h.pid)); err != nil || filepath.Base(exe) != "cat" {
			return fmt.Errorf("not yet cat: %q %v", exe, err)
		}
		return nil
	})
	for _, dir := range []string{"/run/netns", "/etc/netns", "/run/berth"} {
		h.mustExec("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", dir)
	}
	h.mustExec("ip", "link", "set", "lo", "up")
	run(t, "ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(h.pid))
	run(t, "ip", "link", "set", h.veth, "master", underlayBridge, "up")
	h.mustExec("ip", "addr", "add", h.addr+"/24", "dev", "eth0")
	h.mustExec("ip", "link", "set", "eth0", "up")
	h.mustExec("ip", "route", "add", "default", "via", underlayGW)
	return h
}

// cleanup ends the daemon and the holder by PID; the host's namespaces, and with them
// every sandbox, bridge, VXLAN device and rule its daemon made, go with the last process
// in them. The underlay veth is deleted at once (a dying netns frees it asynchronously).
func (h *host) cleanup() {
	h.stop()
	h.holderPipe.Close()
	h.holder.Process.Kill()
	h.holder.Wait()
	exec.Command("ip", "link", "del", h.veth).Run()
	if h.t.Failed() {
		h.t.Logf("host %s daemon log:\n%s", h.name, h.log)
	}
}

// daemonArgs is the daemon's command line, the same on every start.
func (h *host) daemonArgs() []string {
	args := []string{"-t", strconv.Itoa(h.pid), "-n", "-m", h.cli.bin, "daemon",
		"--root", h.cli.root, "--socket", h.cli.sock, "--resolv-conf", h.cli.resolv}
	if h.r.clustered {
		args = append(args, "--cluster-store", "etcd://"+h.r.etcd.Addr(), "--cluster-advertise", h.addr)
	}
	return args
}

// hostID is the host's cluster ID, which its daemon keeps in ROOT/cluster-host-id.
func (h *host) hostID() string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.cli.root, "cluster-host-id"))
	if err != nil {
		h.t.Fatalf("host %s: %v", h.name, err)
	}
	return strings.TrimSpace(string(b))
}

// start runs the daemon in the host's namespaces and waits until its API answers.
func (h *host) start() {
	h.t.Helper()
	if err := h.launch(); err != nil {
		h.t.Fatalf("host %s: %v\n%s", h.name, err, h.log)
	}
}

func (h *host) launch() error {
	h.dmu.Lock()
	cmd := exec.Command("nsenter", h.daemonArgs()...)
	fmt.Fprintf(h.log, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = h.log, h.log
	if err := cmd.Start(); err != nil {
		h.dmu.Unlock()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	h.dcmd, h.ddone = cmd, done
	h.dmu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := h.run("network", "ls", "-q"); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("daemon exited at start")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("daemon did not answer within 15s")
}

// stop ends the daemon with SIGTERM (SIGKILL after 10 s, an error); kill9 with SIGKILL,
// as a crash of the host's daemon. Both do nothing when it is not running.
func (h *host) stop()  { h.signal(syscall.SIGTERM) }
func (h *host) kill9() { h.signal(syscall.SIGKILL) }

func (h *host) signal(sig syscall.Signal) {
	h.dmu.Lock()
	defer h.dmu.Unlock()
	if h.dcmd == nil {
		return
	}
	h.dcmd.Process.Signal(sig)
	select {
	case <-h.ddone:
	case <-time.After(10 * time.Second):
		h.dcmd.Process.Kill()
		<-h.ddone
		h.t.Errorf("host %s: daemon ignored %v for 10s", h.name, sig)
	}
	h.dcmd = nil
}

// restart stops the daemon (SIGTERM) if it runs and starts it again on the same state.
func (h *host) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

// run, must and fails are the berth client against this host's daemon (see daemon).
func (h *host) run(args ...string) (string, string, error) { return h.cli.run(args...) }
func (h *host) must(args ...string) string {
	h.t.Helper()
	return h.cli.must(args...)
}
func (h *host) fails(want string, args ...string) {
	h.t.Helper()
	h.cli.fails(want, args...)
}

// exec runs a command in the host's net and mount namespaces (`ip netns exec web dig ...`
// sees the host's sandboxes) and returns its combined output.
func (h *host) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(h.pid), "-n", "-m"}, args...)...).CombinedOutput()
	return string(out), err
}

func (h *host) mustExec(args ...string) string {
	h.t.Helper()
	out, err := h.exec(args...)
	if err != nil {
		h.t.Fatalf("host %s: %s: %v\n%s", h.name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// nsPath is the path of sandbox sb's netns as the test's own namespace reaches it
// (through the holder's root, in the host's mount namespace), for nsutil and echoIn.
func (h *host) nsPath(sb string) string {
	return fmt.Sprintf("/proc/%d/root/run/netns/%s", h.pid, sb)
}

// netPath is the host's own netns.
func (h *host) netPath() string { return fmt.Sprintf("/proc/%d/ns/net", h.pid) }

// dig asks sandbox sb's 127.0.0.11 for name (a reverse lookup when name is an IP) and
// returns the +short answer, trimmed; "" when there is none.
func (h *host) dig(sb, name string) string {
	h.t.Helper()
	args := []string{"ip", "netns", "exec", sb, "dig", "@127.0.0.11", "+short", "+tries=1", "+time=2"}
	if _, err := netip.ParseAddr(name); err == nil {
		args = append(args, "-x", name)
	} else {
		args = append(args, name)
	}
	out, err := h.exec(args...)
	if err != nil {
		return "error: " + strings.TrimSpace(out)
	}
	return strings.TrimSpace(out)
}

// ping pings addr once from sandbox sb.
func (h *host) ping(sb, addr string) error {
	out, err := h.exec("ip", "netns", "exec", sb, "ping", "-c1", "-W1", addr)
	if err != nil {
		return fmt.Errorf("host %s: ping %s from %s: %v: %s", h.name, addr, sb, err, strings.TrimSpace(out))
	}
	return nil
}

// inspectNetwork returns `network inspect` of net on this host, or an error.
func (h *host) inspectNetwork(net string) (api.Network, error) {
	o, e, err := h.run("network", "inspect", net)
	if err != nil {
		return api.Network{}, fmt.Errorf("host %s: network inspect %s: %v: %s", h.name, net, err, strings.TrimSpace(e))
	}
	var out []api.Network
	if err := json.Unmarshal([]byte(o), &out); err != nil || len(out) != 1 {
		return api.Network{}, fmt.Errorf("host %s: network inspect %s: %v (%d results)", h.name, net, err, len(out))
	}
	return out[0], nil
}

// waitFor retries cond every 100 ms until it returns nil, and returns how long that took;
// after within it fails the test with cond's last error.
func waitFor(t *testing.T, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dialIn opens a TCP connection to addr from inside the netns at nsPath: the socket is made
// on a thread in that netns and keeps it for good.
func dialIn(nsPath, addr string) (net.Conn, error) {
	var c net.Conn
	err := nsutil.Do(nsPath, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	return c, err
}

// etcdHealthFrom asks etcd's /health from inside the netns at nsPath, over a plain
// HTTP/1.0 request (net/http would dial from another goroutine, outside that netns).
func etcdHealthFrom(nsPath, addr string) error {
	c, err := dialIn(nsPath, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	body, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		return err
	}
	if !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("etcd /health from %s: %q", nsPath, body)
	}
	return nil
}
