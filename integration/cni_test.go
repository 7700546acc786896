package integration

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/testns"
)

// cniBin returns the berth-cni plugin ($BERTH_CNI_BIN or a fresh build).
func cniBin(t *testing.T) string { return cniBinary.get(t) }

// cniCall is one invocation of the plugin, as a runtime makes it.
type cniCall struct {
	Command, ContainerID, NetNS, IfName, Args string
	Conf                                      string // the network configuration on stdin
}

// cniReply is what the plugin printed and how it exited.
type cniReply struct {
	out  string
	code int // exit status
	err  struct {
		Code uint   `json:"code"`
		Msg  string `json:"msg"`
	}
}

// runCNI runs berth-cni with exactly the CNI environment of c (plus PATH) and c.Conf on stdin.
func runCNI(t *testing.T, c cniCall) cniReply {
	t.Helper()
	bin := cniBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CNI_COMMAND=" + c.Command, "CNI_CONTAINERID=" + c.ContainerID,
		"CNI_NETNS=" + c.NetNS, "CNI_IFNAME=" + c.IfName, "CNI_ARGS=" + c.Args, "CNI_PATH=" + filepath.Dir(bin)}
	cmd.Stdin = strings.NewReader(c.Conf)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := cniReply{out: o.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("berth-cni %s: %v", c.Command, err)
		}
		r.code = ee.ExitCode()
		if jerr := json.Unmarshal(o.Bytes(), &r.err); jerr != nil || r.err.Msg == "" {
			t.Fatalf("berth-cni %s exited %d without a CNI error on stdout: %q (stderr %q)", c.Command, r.code, o.String(), e.String())
		}
	}
	return r
}

// mustCNI runs a call that has to succeed.
func mustCNI(t *testing.T, c cniCall) string {
	t.Helper()
	r := runCNI(t, c)
	if r.code != 0 {
		t.Fatalf("berth-cni %s %s: exit %d: code %d: %s", c.Command, c.ContainerID, r.code, r.err.Code, r.err.Msg)
	}
	return r.out
}

// failsCNI runs a call that has to fail with CNI error code and a message containing want.
func failsCNI(t *testing.T, code uint, want string, c cniCall) {
	t.Helper()
	r := runCNI(t, c)
	if r.code == 0 {
		t.Errorf("berth-cni %s %s succeeded (%q), want error %d %q", c.Command, c.ContainerID, r.out, code, want)
		return
	}
	if r.err.Code != code || !strings.Contains(r.err.Msg, want) {
		t.Errorf("berth-cni %s %s: error %d %q, want %d containing %q", c.Command, c.ContainerID, r.err.Code, r.err.Msg, code, want)
	}
}

// cniResult is the part of a CNI 1.x result the tests read.
type cniResult struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name, Mac, Sandbox string
	} `json:"interfaces"`
	IPs []struct {
		Interface        *int
		Address, Gateway string
	} `json:"ips"`
	Routes []struct{ Dst, GW string }     `json:"routes"`
	DNS    struct{ Nameservers []string } `json:"dns"`
}

func parseResult(t *testing.T, out string) cniResult {
	t.Helper()
	var r cniResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("result %q: %v", out, err)
	}
	return r
}

// netnsProcess starts a process in a network namespace of its own (a container without a
// network, as a runtime hands it to CNI) and returns its /proc/PID/ns/net.
func netnsProcess(t *testing.T) string {
	t.Helper()
	proc := exec.Command("unshare", "--net", "sleep", "600")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Process.Kill(); proc.Wait() })
	path := fmt.Sprintf("/proc/%d/ns/net", proc.Process.Pid)
	self, _ := os.Readlink("/proc/self/ns/net")
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) { // until unshare has switched namespaces
		if l, _ := os.Readlink(path); l != "" && l != self {
			return path
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not get a netns of its own", path)
	return ""
}

// nsLinks lists the interfaces of a netns, one line each.
func nsLinks(t *testing.T, nsPath string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr in %s: %v: %s", nsPath, err, out)
	}
	return string(out)
}

// sandboxLabels reads a sandbox's labels through `berth sandbox inspect`.
func (d *daemon) sandboxLabels(name string) map[string]string {
	d.t.Helper()
	var out []struct{ Labels map[string]string }
	if err := json.Unmarshal([]byte(d.must("sandbox", "inspect", name)), &out); err != nil || len(out) != 1 {
		d.t.Fatalf("sandbox inspect %s: %v", name, err)
	}
	return out[0].Labels
}

// cniConf is a network configuration for network app of the daemon d.
func cniConf(d *daemon, version string, aliases ...string) string {
	conf := map[string]any{"cniVersion": version, "name": "app", "type": "berth-cni", "network": "app",
		"daemon": "unix://" + d.sock}
	if len(aliases) > 0 {
		conf["runtimeConfig"] = map[string]any{"aliases": map[string][]string{"app": aliases}}
	}
	b, _ := json.Marshal(conf)
	return string(b)
}

// TestCNIPlugin drives berth-cni as a runtime would: ADD, CHECK, name and alias resolution
// from another sandbox and from inside, ADD again, DEL twice, GC, VERSION and STATUS.
func TestCNIPlugin(t *testing.T) {
	d, _ := dnsSetup(t)
	conf := cniConf(d, "1.1.0", "api", "www")
	ns := netnsProcess(t)
	const id = "6f1e0c3a9b2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d"
	add := cniCall{Command: "ADD", ContainerID: id, NetNS: ns, IfName: "eth0", Conf: conf,
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=" + id}
	out := mustCNI(t, add)
	res := parseResult(t, out)
	podIP := d.ip("pod1", "app")
	sb := d.inspectSandbox("pod1")
	ep := sb.Networks["app"]
	if res.CNIVersion != "1.1.0" || len(res.Interfaces) != 1 || res.Interfaces[0].Name != "eth0" ||
		res.Interfaces[0].Sandbox != ns || res.Interfaces[0].Mac != ep.MacAddress {
		t.Errorf("interfaces: %s", out)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address != podIP+"/24" || res.IPs[0].Gateway != "10.60.0.1" ||
		res.IPs[0].Interface == nil || *res.IPs[0].Interface != 0 {
		t.Errorf("ips: %s, want %s/24 via 10.60.0.1", out, podIP)
	}
	if len(res.Routes) != 1 || res.Routes[0].Dst != "0.0.0.0/0" || res.Routes[0].GW != "10.60.0.1" {
		t.Errorf("routes: %s", out)
	}
	if !slices.Equal(res.DNS.Nameservers, []string{"127.0.0.11"}) {
		t.Errorf("dns: %s", out)
	}
	wantLabels := map[string]string{"io.berth.cni.container": id, "io.berth.cni.ifname": "eth0", "io.berth.cni.network": "app"}
	if l := d.sandboxLabels("pod1"); !equalMaps(l, wantLabels) {
		t.Errorf("labels %v, want %v", l, wantLabels)
	}
	if links := nsLinks(t, ns); !strings.Contains(links, "eth0") || !strings.Contains(links, podIP+"/24") {
		t.Errorf("netns has no eth0 with %s:\n%s", podIP, links)
	}
	check := add
	check.Command = "CHECK"
	mustCNI(t, check)

	// Names: the pod name and both aliases, from another sandbox and from inside the pod.
	for _, q := range []string{"pod1", "api", "www", "pod1.app"} {
		if r := dig(t, "web", q); !slices.Equal(r.values("A"), []string{podIP}) {
			t.Errorf("dig %s from web: %v, want %s\n%s", q, r.values("A"), podIP, r.raw)
		}
	}
	webIP := d.ip("web", "app")
	if o, err := exec.Command("nsenter", "--net="+ns, "dig", "@127.0.0.11", "+short", "database").CombinedOutput(); err != nil ||
		strings.TrimSpace(string(o)) != d.ip("db", "app") {
		t.Errorf("dig database inside the pod: %v %q", err, o)
	}
	if o, err := exec.Command("nsenter", "--net="+ns, "ping", "-c1", "-W2", webIP).CombinedOutput(); err != nil {
		t.Errorf("ping web from the pod: %v %s", err, o)
	}

	// ADD again: the same result, nothing new.
	if again := mustCNI(t, add); again != out {
		t.Errorf("second ADD:\n%s\nfirst:\n%s", again, out)
	}
	if n := strings.Count(d.must("sandbox", "ls", "-q"), "\n") + 1; n != 3 {
		t.Errorf("%d sandboxes after the second ADD, want 3 (web, db, pod1)", n)
	}
	// Mismatches fail clearly and change nothing.
	other := netnsProcess(t)
	moved := add
	moved.NetNS = other
	failsCNI(t, 999, "already attached", moved)
	checkOther := check
	checkOther.NetNS = other
	failsCNI(t, 8, "not CNI_NETNS", checkOther) // ErrInvalidNetNS
	eth1 := add
	eth1.IfName, eth1.ContainerID = "net1", "c-net1"
	failsCNI(t, 4, `CNI_IFNAME "net1"`, eth1)
	taken := add
	taken.ContainerID, taken.NetNS, taken.Args = "c-taken", other, "K8S_POD_NAME=web"
	failsCNI(t, 999, "already in use", taken)
	own := add
	own.ContainerID, own.NetNS, own.Args = "c-own", "/proc/self/ns/net", ""
	failsCNI(t, 8, "own network namespace", own)
	unknown := add
	unknown.ContainerID, unknown.NetNS, unknown.Args = "c-unknown", other, "FOO=bar"
	failsCNI(t, 4, "unknown args", unknown)
	if n := strings.Count(d.must("sandbox", "ls", "-q"), "\n") + 1; n != 3 {
		t.Errorf("%d sandboxes after failed ADDs, want 3", n)
	}

	// DEL: sandbox gone, netns kept (the runtime's), empty but for lo; DEL again is fine.
	del := cniCall{Command: "DEL", ContainerID: id, NetNS: ns, IfName: "eth0", Conf: conf}
	mustCNI(t, del)
	if _, _, err := d.run("sandbox", "inspect", "pod1"); err == nil {
		t.Errorf("sandbox pod1 still there after DEL")
	}
	if links := nsLinks(t, ns); strings.Contains(links, "eth0") || !strings.Contains(links, "lo") {
		t.Errorf("after DEL the netns still has eth0 or lost lo:\n%s", links)
	}
	if r := dig(t, "web", "api"); r.status != "NXDOMAIN" {
		t.Errorf("alias api after DEL: %s", r.status)
	}
	mustCNI(t, del)
	del.NetNS = "" // runtimes may pass no netns when it is gone already
	mustCNI(t, del)
	failsCNI(t, 3, "has no berth sandbox", check)

	// Name from the container ID: Docker-style hex IDs get cni-<12 hex>, others stay.
	ns2, ns3 := netnsProcess(t), netnsProcess(t)
	conf10 := cniConf(d, "1.0.0")
	res2 := parseResult(t, mustCNI(t, cniCall{Command: "ADD", ContainerID: id, NetNS: ns2, IfName: "eth0", Conf: conf10}))
	if res2.CNIVersion != "1.0.0" {
		t.Errorf("cniVersion of a 1.0.0 ADD: %q", res2.CNIVersion)
	}
	if r := dig(t, "web", "cni-"+id[:12]); !slices.Equal(r.values("A"), []string{d.ip("cni-"+id[:12], "app")}) {
		t.Errorf("cni-%s does not resolve: %v", id[:12], r.raw)
	}
	mustCNI(t, cniCall{Command: "ADD", ContainerID: "default-gc", NetNS: ns3, IfName: "eth0", Conf: conf10})
	d.inspectSandbox("default-gc")

	// GC keeps valid attachments and sandboxes made without CNI.
	var gcConf map[string]any
	json.Unmarshal([]byte(conf), &gcConf)
	gcConf["cni.dev/valid-attachments"] = []map[string]string{{"containerID": id, "ifname": "eth0"}}
	b, _ := json.Marshal(gcConf)
	mustCNI(t, cniCall{Command: "GC", Conf: string(b)})
	if _, _, err := d.run("sandbox", "inspect", "default-gc"); err == nil {
		t.Errorf("GC left default-gc, not a valid attachment")
	}
	d.inspectSandbox("cni-" + id[:12])
	d.inspectSandbox("web")
	d.inspectSandbox("db")
	failsCNI(t, 1, "does not allow GC", cniCall{Command: "GC", Conf: conf10})

	// VERSION and STATUS, then STATUS, ADD and DEL with the daemon down.
	var ver struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	json.Unmarshal([]byte(mustCNI(t, cniCall{Command: "VERSION"})), &ver)
	if !slices.Equal(ver.SupportedVersions, []string{"1.0.0", "1.1.0"}) {
		t.Errorf("VERSION: %v", ver.SupportedVersions)
	}
	mustCNI(t, cniCall{Command: "STATUS", Conf: conf})
	noNet := strings.Replace(conf, `"network":"app"`, `"network":"nope"`, 1)
	failsCNI(t, 50, "nope", cniCall{Command: "STATUS", Conf: noNet})
	mustCNI(t, cniCall{Command: "DEL", ContainerID: id, NetNS: ns2, IfName: "eth0", Conf: conf})
	d.removeAll()
	d.stop()
	failsCNI(t, 50, "cannot connect to the berth daemon", cniCall{Command: "STATUS", Conf: conf})
	failsCNI(t, 11, "cannot connect", add)
	failsCNI(t, 11, "cannot connect", cniCall{Command: "DEL", ContainerID: id, NetNS: ns, IfName: "eth0", Conf: conf})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// requireTools skips the test when a tool is missing, or fails it under CI=true, where a
// skipped required test would hide a broken setup.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: CI must install it (see .ci/run)", tool)
			}
			t.Skipf("%s not found: install containerd, runc and busybox-static to run this test", tool)
		}
	}
}

// staticBusybox returns busybox if it is statically linked (Debian's busybox-static), so it
// runs in a rootfs of its own with no libraries.
func staticBusybox(t *testing.T) string {
	t.Helper()
	requireTools(t, "busybox")
	p, _ := exec.LookPath("busybox")
	f, err := elf.Open(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is dynamically linked: CI must install busybox-static", p)
			}
			t.Skipf("%s is dynamically linked: install busybox-static", p)
		}
	}
	return p
}

// busyboxRootfs makes a container root file system holding only a static busybox.
func busyboxRootfs(t *testing.T, busybox, dir string) {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "nslookup"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
}

// containerd is one containerd with all its state in dir, running in a mount namespace of
// its own (testdata/cni/containerd.sh) where /etc/cni/net.d and /opt/cni/bin are dir's.
type containerd struct {
	t    *testing.T
	dir  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
	mnt  string // the mount namespace's /proc/PID/ns/mnt link, to find its processes
}

const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "%[1]s/containerd.sock"
[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
`

func startContainerd(t *testing.T, plugin string) *containerd {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"net.d", "bin", "root", "state", "opt"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(plugin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "berth-cni"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), fmt.Appendf(nil, containerdConfig, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs(filepath.Join("testdata", "cni", "containerd.sh"))
	c := &containerd{t: t, dir: dir, log: &bytes.Buffer{}, done: make(chan struct{})}
	c.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", script, dir)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c.mnt == "" {
			mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", c.cmd.Process.Pid))
			if self, _ := os.Readlink("/proc/self/ns/mnt"); mnt != self {
				c.mnt = mnt
			}
		}
		if c.mnt != "" {
			if _, err := c.ctr("version"); err == nil {
				return c
			}
		}
		select {
		case <-c.done:
			t.Fatalf("containerd exited at start:\n%s", c.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer within 20s:\n%s", c.log)
		}
	}
}

// ctr runs ctr against this containerd, inside its mount namespace (where ctr --cni finds
// the configuration and the plugin at their fixed paths).
func (c *containerd) ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{fmt.Sprintf("--mount=/proc/%d/ns/mnt", c.cmd.Process.Pid), "ctr",
		"--address", filepath.Join(c.dir, "containerd.sock")}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// stop ends containerd (SIGTERM, then SIGKILL) and then any process still in its mount
// namespace (a shim whose task was not deleted), all by PID.
func (c *containerd) stop() {
	select {
	case <-c.done:
	default:
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	if c.mnt == "" {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); mnt == c.mnt {
			c.t.Errorf("process %d outlived containerd in its mount namespace: killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if c.t.Failed() {
		c.t.Logf("containerd log:\n%s", c.log)
	}
}

// removeCgroup deletes the cgroup directories runc made under name in every hierarchy
// (the containers' own cgroups go with them; their parent stays behind).
func removeCgroup(t *testing.T, name string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	if d := filepath.Join("/sys/fs/cgroup", name); isDir(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		subs, _ := filepath.Glob(filepath.Join(d, "*"))
		for _, s := range subs {
			if isDir(s) {
				syscall.Rmdir(s)
			}
		}
		if err := syscall.Rmdir(d); err != nil {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// TestCNIContainerd runs two busybox containers with Debian's containerd and `ctr run --cni`
// on a berth network, and has each resolve the other by name and alias through 127.0.0.11.
//
// ctr 1.6 passes the plugin no CNI_ARGS and no capability arguments, only the container ID
// ("<namespace>-<id>", so the sandbox names are default-alpha and default-beta). To give
// each container an alias the test writes the network configuration before each `ctr run`
// with the runtimeConfig a runtime supporting the "aliases" capability would inject.
func TestCNIContainerd(t *testing.T) {
	testns.Require(t)
	requireTools(t, "containerd", "ctr", "runc", "nsenter")
	busybox := staticBusybox(t)
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.61.0.0/24", "ctrnet")
	c := startContainerd(t, cniBin(t))

	cgroup := fmt.Sprintf("berth-cni-test-%d", os.Getpid())
	if len(mustGlob(filepath.Join("/sys/fs/cgroup", "*", cgroup))) > 0 || isDir(filepath.Join("/sys/fs/cgroup", cgroup)) {
		t.Fatalf("cgroup %s exists already", cgroup)
	}
	t.Cleanup(func() { removeCgroup(t, cgroup) })
	plugin := map[string]any{"type": "berth-cni", "network": "ctrnet", "daemon": "unix://" + d.sock}
	started := []string{}
	t.Cleanup(func() {
		for _, name := range started {
			// What a runtime does at the end: CNI DEL, then the task and the container.
			conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "ctrnet", "type": "berth-cni",
				"network": "ctrnet", "daemon": "unix://" + d.sock})
			if r := runCNI(t, cniCall{Command: "DEL", ContainerID: "default-" + name, IfName: "eth0", Conf: string(conf)}); r.code != 0 {
				t.Errorf("DEL %s: %s", name, r.err.Msg)
			}
			if _, err := c.ctr("task", "rm", "-f", name); err != nil {
				t.Error(err)
			}
			if _, err := c.ctr("container", "rm", name); err != nil {
				t.Error(err)
			}
		}
	})
	for _, name := range []string{"alpha", "beta"} {
		plugin["runtimeConfig"] = map[string]any{"aliases": map[string][]string{"ctrnet": {name + "-alias"}}}
		conflist, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "ctrnet", "plugins": []any{plugin}})
		if err := os.WriteFile(filepath.Join(c.dir, "net.d", "10-berth.conflist"), conflist, 0o644); err != nil {
			t.Fatal(err)
		}
		rootfs := filepath.Join(t.TempDir(), "rootfs")
		busyboxRootfs(t, busybox, rootfs)
		if _, err := c.ctr("run", "--rootfs", "--cni", "--null-io", "-d", "--cgroup", "/"+cgroup+"/"+name,
			rootfs, name, "/bin/sleep", "600"); err != nil {
			t.Fatal(err)
		}
		started = append(started, name)
		sb := d.inspectSandbox("default-" + name)
		if ep := sb.Networks["ctrnet"]; ep.InterfaceName != "eth0" || !slices.Contains(ep.Aliases, name+"-alias") {
			t.Errorf("sandbox default-%s: %+v", name, ep)
		}
		if l := d.sandboxLabels("default-" + name); l["io.berth.cni.container"] != "default-"+name {
			t.Errorf("sandbox default-%s labels %v", name, l)
		}
	}
	for _, tc := range []struct{ from, name, owner string }{
		{"alpha", "default-beta", "beta"},
		{"alpha", "beta-alias", "beta"},
		{"beta", "default-alpha", "alpha"},
		{"beta", "alpha-alias", "alpha"},
	} {
		want := d.ip("default-"+tc.owner, "ctrnet")
		out, err := c.ctr("task", "exec", "--exec-id", "nslookup-"+tc.name, tc.from, "/bin/nslookup", tc.name, "127.0.0.11")
		if err != nil || !strings.Contains(out, "Address: "+want) {
			t.Errorf("nslookup %s 127.0.0.11 in %s: %v\n%s\nwant Address: %s", tc.name, tc.from, err, out, want)
		}
	}
}

func mustGlob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

// TestCNINamedNetNS: the plugin adopts whatever netns path it is handed, whatever its name
// (issue 14.2): `ip netns add X` then ADD for container X with CNI_NETNS=/run/netns/X, as
// cnitool does, and containerd's /run/netns/cni-<uuid> files. DEL leaves the netns where
// it was; the sandbox survives a daemon restart in between; `sandbox create --netns` of a
// named netns under its own name works the same, and a different netns of that name is
// still refused.
func TestCNINamedNetNS(t *testing.T) {
	d, _ := dnsSetup(t)
	conf := cniConf(d, "1.1.0")
	ipNetNS := func(name string) string {
		t.Helper()
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		return "/run/netns/" + name
	}
	alive := func(path string) bool {
		return exec.Command("nsenter", "--net="+path, "true").Run() == nil
	}

	const uuidName = "cni-5d3c2b1a-0f9e-8d7c-6b5a-493827161504"
	const hexID = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	cases := []struct{ name, containerID, netns, sandbox string }{
		{"cnitool: ip netns add X, container X", "tool1", ipNetNS("tool1"), "tool1"},
		{"containerd: /run/netns/cni-<uuid>", hexID, ipNetNS(uuidName), "cni-" + hexID[:12]},
	}
	for _, c := range cases {
		add := cniCall{Command: "ADD", ContainerID: c.containerID, NetNS: c.netns, IfName: "eth0", Conf: conf}
		res := parseResult(t, mustCNI(t, add))
		ip := d.ip(c.sandbox, "app")
		if len(res.IPs) != 1 || res.IPs[0].Address != ip+"/24" || res.Interfaces[0].Sandbox != c.netns {
			t.Errorf("%s: result %+v, want %s/24 in %s", c.name, res, ip, c.netns)
		}
		if links := nsLinks(t, c.netns); !strings.Contains(links, ip+"/24") {
			t.Errorf("%s: %s has no %s:\n%s", c.name, c.netns, ip, links)
		}
		if r := dig(t, "web", c.sandbox); !slices.Equal(r.values("A"), []string{ip}) {
			t.Errorf("%s: dig %s from web: %v, want %s", c.name, c.sandbox, r.values("A"), ip)
		}
		if o, err := exec.Command("nsenter", "--net="+c.netns, "ping", "-c1", "-W2", d.ip("web", "app")).CombinedOutput(); err != nil {
			t.Errorf("%s: ping web from the netns: %v %s", c.name, err, o)
		}
	}

	// A restart keeps both; then DEL removes the sandboxes and leaves the netns files.
	d.stop()
	d.start()
	for _, c := range cases {
		if r := dig(t, "web", c.sandbox); r.status != "NOERROR" || len(r.values("A")) != 1 {
			t.Errorf("%s: after restart, dig %s: %s %v", c.name, c.sandbox, r.status, r.answers)
		}
		mustCNI(t, cniCall{Command: "DEL", ContainerID: c.containerID, NetNS: c.netns, IfName: "eth0", Conf: conf})
		if _, _, err := d.run("sandbox", "inspect", c.sandbox); err == nil {
			t.Errorf("%s: sandbox %s still there after DEL", c.name, c.sandbox)
		}
		if !alive(c.netns) {
			t.Errorf("%s: DEL removed %s, want it left in place", c.name, c.netns)
		}
		if links := nsLinks(t, c.netns); strings.Contains(links, "eth0") {
			t.Errorf("%s: eth0 still in %s after DEL:\n%s", c.name, c.netns, links)
		}
	}
	// ADD again into the same named netns works after the DEL.
	mustCNI(t, cniCall{Command: "ADD", ContainerID: "tool1", NetNS: cases[0].netns, IfName: "eth0", Conf: conf})
	mustCNI(t, cniCall{Command: "DEL", ContainerID: "tool1", NetNS: cases[0].netns, IfName: "eth0", Conf: conf})

	// The same through the CLI, with a rename away and back in between.
	own := ipNetNS("own1")
	d.must("sandbox", "create", "--name", "own1", "--netns", own, "--network", "app")
	d.must("sandbox", "rename", "own1", "own2")
	if !alive(own) || !alive("/run/netns/own2") {
		t.Errorf("rename of a netns adopted in place: own1 alive %v, own2 alive %v; want both", alive(own), alive("/run/netns/own2"))
	}
	d.must("sandbox", "rename", "own2", "own1")
	if _, err := os.Lstat("/run/netns/own2"); err == nil {
		t.Errorf("rename back left berth's pin /run/netns/own2")
	}
	d.must("sandbox", "rm", "-f", "own1")
	if !alive(own) {
		t.Errorf("sandbox rm removed %s, want it left in place", own)
	}
	// A netns of that name that is not the one adopted stays someone else's.
	other := netnsProcess(t)
	d.fails("/run/netns/own1 exists and is not a berth sandbox", "sandbox", "create", "--name", "own1", "--netns", other, "--network", "app")
	d.fails("/run/netns/own1 exists and is not a berth sandbox", "sandbox", "create", "--name", "own1", "--network", "app")
}
