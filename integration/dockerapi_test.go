package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// The Docker Engine API front end (--docker-socket, issue 17 item 1), driven by Docker's
// own clients: Debian's docker CLI 20.10 (API 1.41, what CI installs), the docker 28 CLI
// where this machine has one, and the Go SDK (v28.5.2, negotiating down to 1.48).

// dockerCLIs are the docker CLIs to drive berth with: Debian's (required) and a newer one
// at /usr/local/bin if there is one.
var dockerCLIs = []string{"/usr/bin/docker", "/usr/local/bin/docker"}

// dockerClient runs one docker CLI against a daemon's Docker socket.
type dockerClient struct {
	t    *testing.T
	bin  string
	sock string
	home string // HOME and DOCKER_CONFIG: no user's config or contexts leak in
}

func (c dockerClient) run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+c.sock, "HOME="+c.home, "DOCKER_CONFIG="+c.home)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func (c dockerClient) must(args ...string) string {
	c.t.Helper()
	o, e, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", c.bin, strings.Join(args, " "), err, o, e)
	}
	return strings.TrimSpace(o)
}

// fails runs a docker command that must fail with one line on stderr containing want.
func (c dockerClient) fails(want string, args ...string) {
	c.t.Helper()
	c.failsRe(regexp.MustCompile(regexp.QuoteMeta(want)), args...)
}

// exitStatusLine is what docker 28's network rm adds below the daemon's message (as it
// does against dockerd: the oracle).
var exitStatusLine = regexp.MustCompile(`\nexit status \d+$`)

// failsRe is fails with a pattern, for messages the two CLIs word differently.
func (c dockerClient) failsRe(want *regexp.Regexp, args ...string) {
	c.t.Helper()
	o, e, err := c.run(args...)
	e = exitStatusLine.ReplaceAllString(strings.TrimRight(e, "\n"), "")
	if err == nil || strings.Count(e, "\n") != 0 || !want.MatchString(e) {
		c.t.Errorf("%s %s: err %v, stdout %q, stderr %q; want a failure with one line containing %q",
			c.bin, strings.Join(args, " "), err, o, e, want)
	}
}

// startDockerAPI starts a berth daemon with --docker-socket and returns it and the socket.
func startDockerAPI(t *testing.T) (*daemon, string) {
	d := newDaemon(t)
	sock := filepath.Join(d.root, "docker.sock")
	d.start("--docker-socket", sock)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("docker socket: %v %v; want a socket with mode 0660 as the API socket", fi, err)
	}
	return d, sock
}

// TestDockerCLI drives berth with each docker CLI: network create, ls (with filters),
// inspect (with a template), connect, disconnect, rm, prune, events, and docker ps/info/
// version; a sandbox connected through Docker's API resolves by its alias on 127.0.0.11.
func TestDockerCLI(t *testing.T) {
	for _, bin := range dockerCLIs {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(bin)))+"-"+filepath.Base(bin), func(t *testing.T) {
			if _, err := os.Stat(bin); err != nil {
				if bin == dockerCLIs[0] {
					t.Fatalf("%s: %v (make test installs docker.io)", bin, err)
				}
				t.Skipf("%s absent: only Debian's docker CLI is checked", bin)
			}
			d, sock := startDockerAPI(t)
			dockerCLIRun(t, d, dockerClient{t: t, bin: bin, sock: sock, home: t.TempDir()})
		})
	}
}

func dockerCLIRun(t *testing.T, d *daemon, c dockerClient) {
	// Docker's server version: what negotiation settled on.
	if v := c.must("version", "--format", "{{.Server.APIVersion}}"); v != "1.48" {
		t.Errorf("server API version %q; want 1.48", v)
	}
	if out := c.must("info"); !strings.Contains(out, "Containers: 0") {
		t.Errorf("docker info:\n%s\nwant Containers: 0", out)
	}
	c.fails("berth serves only Docker's network API; it runs no containers", "ps")

	id := c.must("network", "create", "--subnet", "10.88.0.0/24", "--gateway", "10.88.0.1",
		"--ip-range", "10.88.0.128/25", "--label", "tier=db", "app")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("network create printed %q; want a 64-hex ID", id)
	}
	c.must("network", "create", "other")
	c.fails("network with name app already exists", "network", "create", "app")
	if got := c.must("network", "ls", "--format", "{{.Name}}"); !sameSet(got, "app bridge host none other") {
		t.Errorf("network ls: %q", got)
	}
	if got := c.must("network", "ls", "-q", "--filter", "name=app"); got != id[:12] {
		t.Errorf("network ls -q --filter name=app: %q; want %s", got, id[:12])
	}
	if got := c.must("network", "ls", "--filter", "label=tier=db", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); got != "app bridge local" {
		t.Errorf("network ls --filter label=tier=db: %q", got)
	}
	if got := c.must("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"); !sameSet(got, "app other") {
		t.Errorf("network ls --filter type=custom: %q", got)
	}
	c.fails("Invalid filter 'bogus'", "network", "ls", "--filter", "bogus=1")
	if got := c.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "app"); got != "10.88.0.0/24" {
		t.Errorf("inspect -f subnet: %q", got)
	}
	if got := c.must("network", "inspect", "-f", "{{.Id}} {{.Driver}} {{.Labels.tier}} {{range .IPAM.Config}}{{.IPRange}} {{.Gateway}}{{end}}", "app"); got != id+" bridge db 10.88.0.128/25 10.88.0.1" {
		t.Errorf("inspect -f: %q", got)
	}
	// The daemon's 404: docker 28 prints its words, 20.10 its own (as against dockerd).
	notFound := func(n string) *regexp.Regexp {
		return regexp.MustCompile("^(Error response from daemon: network " + n + " not found|Error: No such network: " + n + ")$")
	}
	c.failsRe(notFound("nope"), "network", "inspect", "nope")

	// Sandboxes made by berth are Docker's containers here.
	d.must("sandbox", "create", "--name", "db") // on the default bridge
	c.fails("No such container: ghost", "network", "connect", "app", "ghost")
	// berth's one line, 400 as dockerd's "container cannot be disconnected from host network
	// or connected to host network".
	c.fails("sandboxes join host with --network host", "network", "connect", "host", "db")
	c.must("network", "connect", "--alias", "www", "--ip", "10.88.0.50", "app", "db")
	c.fails("endpoint with name db already exists in network app", "network", "connect", "app", "db")
	if got := c.must("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "app"); got != "db 10.88.0.50/24" {
		t.Errorf("inspect Containers: %q", got)
	}
	// The front end drives the real thing: a second sandbox, connected through Docker's
	// API too, asks the embedded DNS for the first by its alias.
	d.must("sandbox", "create", "--name", "client", "--network", "other")
	c.must("network", "connect", "app", "client")
	if out, err := inNS(t, "client", "dig", "@127.0.0.11", "+short", "+tries=1", "+time=2", "www"); err != nil || strings.TrimSpace(out) != "10.88.0.50" {
		t.Errorf("dig www from client: %v %q; want 10.88.0.50", err, out)
	}
	c.fails("error while removing network: network app has active endpoints (client, db)", "network", "rm", "app")
	c.must("network", "disconnect", "app", "db")
	c.fails("is not connected to network app", "network", "disconnect", "app", "db")
	c.must("network", "disconnect", "--force", "app", "client")
	c.fails("bridge is a pre-defined network and cannot be removed", "network", "rm", "bridge")
	if got := c.must("network", "rm", "app"); got != "app" {
		t.Errorf("network rm printed %q", got)
	}
	c.failsRe(notFound("app"), "network", "inspect", "app")

	// Events: a stream filtered to networks sees a network's create and a connect, not the
	// sandbox's create in between.
	// --since now: a stream that connects late (a loaded CI machine) still gets the
	// events made after this line, replayed, instead of missing them.
	now := time.Now()
	since := fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond())
	ev := exec.Command(c.bin, "events", "--since", since, "--filter", "type=network", "--format", `{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{index .Actor.Attributes "container"}}`)
	ev.Env = append(os.Environ(), "DOCKER_HOST=unix://"+c.sock, "HOME="+c.home, "DOCKER_CONFIG="+c.home)
	stdout, err := ev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ev.Process.Kill(); ev.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	c.must("network", "create", "evnet")
	d.must("sandbox", "create", "--name", "evsb")
	c.must("network", "connect", "evnet", "evsb")
	evsb := d.inspectSandbox("evsb").ID
	for _, want := range []string{"network create evnet ", "network connect evnet " + evsb} {
		select {
		case got := <-lines:
			if strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("event %q; want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %q within 5s", want)
		}
	}
	c.must("network", "disconnect", "evnet", "evsb")
	// --since replays what the daemon kept, --until ends the stream by itself.
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	past := c.must("events", "--since", "1m", "--until", until, "--filter", "network=evnet", "--format", "{{.Action}}")
	if got := strings.Fields(past); !slices.Equal(got, []string{"create", "connect", "disconnect"}) {
		t.Errorf("events --since 1m --until now+1s --filter network=evnet: %q", past)
	}

	// prune removes the unused user networks and lists them.
	if out := c.must("network", "prune", "-f"); !strings.Contains(out, "Deleted Networks:") || !sameSet(strings.TrimSpace(strings.TrimPrefix(out, "Deleted Networks:")), "evnet") {
		t.Errorf("prune: %q", out)
	}
	if got := c.must("network", "ls", "--format", "{{.Name}}"); !sameSet(got, "bridge host none other") {
		t.Errorf("after prune: %q", got)
	}
	if out := c.must("info"); !strings.Contains(out, "Containers: 3") {
		t.Errorf("docker info:\n%s\nwant Containers: 3 (the sandboxes)", out)
	}
}

// sameSet reports whether the whitespace-separated words of a and b are the same set.
func sameSet(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// TestDockerSDK drives berth with Docker's Go client (v28.5.2), which negotiates the API
// version down to berth's 1.48.
func TestDockerSDK(t *testing.T) {
	d, sock := startDockerAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ping, err := cli.Ping(ctx)
	if err != nil || ping.APIVersion != "1.48" || ping.OSType != "linux" {
		t.Fatalf("ping: %+v %v", ping, err)
	}

	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "network"))})
	time.Sleep(300 * time.Millisecond) // the stream is open once the request is answered

	resp, err := cli.NetworkCreate(ctx, "sdk", network.CreateOptions{
		Driver: "bridge", Labels: map[string]string{"from": "sdk"},
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.89.0.0/24", Gateway: "10.89.0.1",
			AuxAddress: map[string]string{"router": "10.89.0.2"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cli.ClientVersion() != "1.48" {
		t.Errorf("negotiated %s; want 1.48", cli.ClientVersion())
	}
	select {
	case m := <-msgs:
		if m.Type != events.NetworkEventType || m.Action != events.ActionCreate || m.Actor.ID != resp.ID ||
			m.Actor.Attributes["name"] != "sdk" || m.Actor.Attributes["type"] != "bridge" || m.Scope != "local" || m.TimeNano == 0 {
			t.Errorf("event %+v", m)
		}
	case err := <-errs:
		t.Fatalf("events: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no create event within 5s")
	}

	list, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "from=sdk"))})
	if err != nil || len(list) != 1 || list[0].ID != resp.ID {
		t.Fatalf("list label=from=sdk: %v %+v", err, list)
	}
	n, err := cli.NetworkInspect(ctx, "sdk", network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Driver != "bridge" || !n.EnableIPv4 || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "10.89.0.0/24" ||
		n.IPAM.Config[0].AuxAddress["router"] != "10.89.0.2" || n.Scope != "local" {
		t.Errorf("inspect %+v", n)
	}
	if _, err := cli.NetworkInspect(ctx, "nope", network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect nope: %v; want not found", err)
	}
	if _, err := cli.NetworkCreate(ctx, "sdk", network.CreateOptions{}); !cerrdefs.IsConflict(err) {
		t.Errorf("create twice: %v; want a conflict", err)
	}
	if err := cli.NetworkRemove(ctx, "host"); !cerrdefs.IsPermissionDenied(err) {
		t.Errorf("rm host: %v; want forbidden", err)
	}

	d.must("sandbox", "create", "--name", "web")
	d.must("sandbox", "create", "--name", "peer")
	err = cli.NetworkConnect(ctx, "sdk", "web", &network.EndpointSettings{Aliases: []string{"api"},
		IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: "10.89.0.77"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.NetworkConnect(ctx, "sdk", "peer", nil); err != nil {
		t.Fatal(err)
	}
	if err := cli.NetworkConnect(ctx, "sdk", "ghost", nil); !cerrdefs.IsNotFound(err) {
		t.Errorf("connect ghost: %v; want not found", err)
	}
	if out, err := inNS(t, "peer", "dig", "@127.0.0.11", "+short", "+tries=1", "+time=2", "api"); err != nil || strings.TrimSpace(out) != "10.89.0.77" {
		t.Errorf("dig api from peer: %v %q; want 10.89.0.77", err, out)
	}
	web := d.inspectSandbox("web").ID
	select {
	case m := <-msgs:
		if m.Action != events.ActionConnect || m.Actor.ID != resp.ID || m.Actor.Attributes["container"] != web {
			t.Errorf("connect event %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connect event within 5s")
	}
	if err := cli.NetworkRemove(ctx, "sdk"); !cerrdefs.IsPermissionDenied(err) {
		t.Errorf("rm in use: %v; want forbidden", err)
	}
	for _, sb := range []string{"web", "peer"} {
		if err := cli.NetworkDisconnect(ctx, resp.ID[:12], sb, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.NetworkRemove(ctx, "sdk"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.NetworkCreate(ctx, "gone", network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := cli.NetworksPrune(ctx, filters.NewArgs(filters.Arg("until", "1h")))
	if err != nil || len(rep.NetworksDeleted) != 0 {
		t.Errorf("prune until=1h: %v %v; want nothing (gone is newer)", err, rep.NetworksDeleted)
	}
	rep, err = cli.NetworksPrune(ctx, filters.Args{})
	if err != nil || !slices.Equal(rep.NetworksDeleted, []string{"gone"}) {
		t.Errorf("prune: %v %v; want [gone]", err, rep.NetworksDeleted)
	}
	// EnableIPv4 (API 1.48, Docker 28's --ipv4=false): an IPv6-only network.
	no, yes := false, true
	v6, err := cli.NetworkCreate(ctx, "v6only", network.CreateOptions{EnableIPv4: &no, EnableIPv6: &yes,
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: "fd00:89::/64"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := cli.NetworkInspect(ctx, v6.ID, network.InspectOptions{}); err != nil || n.EnableIPv4 || !n.EnableIPv6 ||
		len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "fd00:89::/64" {
		t.Errorf("inspect v6only: %v %+v", err, n)
	}
	if err := cli.NetworkRemove(ctx, v6.ID); err != nil {
		t.Fatal(err)
	}
	// Anything else: Docker's error JSON, which the SDK surfaces as not found.
	if _, err := cli.ContainerList(ctx, container.ListOptions{}); !cerrdefs.IsNotFound(err) ||
		!strings.Contains(err.Error(), "berth serves only Docker's network API") {
		t.Errorf("container list: %v", err)
	}
}

// TestDockerInspectVsOracle compares berth's `docker network inspect` of a network with
// dockerd 20.10's (the oracle, docker-oracle.sh) of the same one, key by key: both made with
// `docker network create --subnet 10.77.0.0/24 --gateway 10.77.0.1 --ip-range
// 10.77.0.128/25 --aux-address h1=10.77.0.5 -o com.docker.network.driver.mtu=1400 --label
// tier=db app`, with one container. The differences are berth's on purpose, listed.
func TestDockerInspectVsOracle(t *testing.T) {
	d, sock := startDockerAPI(t)
	c := dockerClient{t: t, bin: dockerCLIs[0], sock: sock, home: t.TempDir()}
	c.must("network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.1", "--ip-range", "10.77.0.128/25",
		"--aux-address", "h1=10.77.0.5", "-o", "com.docker.network.driver.mtu=1400", "--label", "tier=db", "app")
	d.must("sandbox", "create", "--name", "web")
	c.must("network", "connect", "--ip", "10.77.0.200", "app", "web")
	var got []map[string]any
	if err := json.Unmarshal([]byte(c.must("network", "inspect", "app")), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	const oracle = `{"Name":"app","Id":"98bd6c3a7529be651880379148aa289c46751584ddaca002d8745908f4f6880b","Created":"2026-12-07T08:14:10.247565334Z","Scope":"local","Driver":"bridge","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.77.0.0/24","IPRange":"10.77.0.128/25","Gateway":"10.77.0.1","AuxiliaryAddresses":{"h1":"10.77.0.5"}}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{"173eb756448133f00b95d5c9f787bc5e74a88df599e39aacec6199535e867067":{"Name":"web","EndpointID":"01a0fcc690215af143b654ea076071596b7100ef23c3b122f65580cbe8d54099","MacAddress":"02:42:0a:4d:00:c8","IPv4Address":"10.77.0.200/24","IPv6Address":""}},"Options":{"com.docker.network.driver.mtu":"1400"},"Labels":{"tier":"db"}}`
	var want map[string]any
	if err := json.Unmarshal([]byte(oracle), &want); err != nil {
		t.Fatal(err)
	}
	// Containers are keyed by container ID: key them by name to compare the entries.
	for _, m := range []map[string]any{want, got[0]} {
		byName := map[string]any{}
		for _, c := range m["Containers"].(map[string]any) {
			byName[c.(map[string]any)["Name"].(string)] = c
		}
		m["Containers"] = byName
	}
	diffs := map[string]bool{}
	diffJSON("", want, got[0], diffs)
	// Expected: values of this run (IDs, time), and berth's additions (EnableIPv4 of API
	// 1.48; the bridge name option, always shown). The MAC is the same: 02:42 + the IPv4.
	expected := regexp.MustCompile(`^(Id|Created|Containers\.web\.EndpointID) value$|^(EnableIPv4|Options\.com\.docker\.network\.bridge\.name) only in berth$`)
	var unexpected []string
	for k := range diffs {
		if !expected.MatchString(k) {
			unexpected = append(unexpected, k)
		}
	}
	slices.Sort(unexpected)
	if len(unexpected) > 0 {
		t.Errorf("berth's inspect differs from dockerd's in:\n%s", strings.Join(unexpected, "\n"))
	}
	for k := range diffs {
		t.Logf("differs (expected): %s", k)
	}
}

// diffJSON records each path where a and b differ: "PATH only in dockerd", "PATH only in
// berth", or "PATH value".
func diffJSON(path string, a, b any, out map[string]bool) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for k, v := range am {
			p := strings.TrimPrefix(path+"."+k, ".")
			if w, ok := bm[k]; ok {
				diffJSON(p, v, w, out)
			} else {
				out[p+" only in dockerd"] = true
			}
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				out[strings.TrimPrefix(path+"."+k, ".")+" only in berth"] = true
			}
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			diffJSON(path+"."+string(rune('0'+i)), al[i], bl[i], out)
		}
		return
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		out[path+" value"] = true
	}
}
