package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Issue 17.2: --format like Docker. The same networks are made in a berth daemon and in
// Docker's engine (dockerd from docker.io, in this test's netns as TestCoexistDocker runs
// it), and each template must print the same in both, driven by the docker CLI that CI
// installs (/usr/bin/docker, 20.10.24). Subnets differ (both bridges live in one netns),
// so outputs naming them are compared with berth's 10.81 for Docker's 10.82.

// cliResult is one command's stdout, stderr and exit code.
type cliResult struct {
	out, err string
	code     int
}

// runCLIResult runs bin with args (and env) and returns what it printed and its exit code.
func runCLIResult(t *testing.T, env []string, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return cliResult{o.String(), e.String(), ee.ExitCode()}
	case err != nil:
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return cliResult{o.String(), e.String(), 0}
}

// dockerCLI is the docker client CI has: Debian's, not a newer one first on PATH.
func dockerCLI() string {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	return "docker"
}

func TestFormatLikeDocker(t *testing.T) {
	d := newDaemon(t)
	d.start()
	dk := newDockerEngine(t)
	dk.start()
	berth := func(args ...string) cliResult {
		return runCLIResult(t, []string{"BERTH_HOST=unix://" + d.sock}, d.bin, args...)
	}
	docker := func(args ...string) cliResult {
		return runCLIResult(t, nil, dockerCLI(), append([]string{"-H", "unix://" + dk.sock}, args...)...)
	}
	create := func(run func(...string) cliResult, net string) {
		t.Helper()
		for _, args := range [][]string{
			{"network", "create", "--label", "b=2", "--label", "a=1", "--subnet", net + ".0/24", "--gateway", net + ".1",
				"--ip-range", net + ".128/25", "-o", "com.docker.network.driver.mtu=1400", "fmtapp"},
			{"network", "create", "--internal", "--label", "tier=back", "fmtback"},
		} {
			if r := run(args...); r.code != 0 {
				t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), r.code, r.err)
			}
		}
	}
	create(berth, "10.81.0")
	create(docker, "10.82.0")
	// Docker's subnets and its type name, in berth's words.
	same := strings.NewReplacer("10.82.", "10.81.", "*network.networkContext", "*main.networkContext")

	for _, tc := range []struct {
		name  string
		args  []string
		lines string // keep only the output lines starting with this (other networks differ)
		code  int    // docker's exit code, so an error in both cannot pass for agreement
	}{
		{name: "inspect Id", args: []string{"network", "inspect", "-f", "{{len .Id}}", "fmtapp"}},
		{name: "inspect ID", args: []string{"network", "inspect", "-f", "{{len .ID}}", "fmtapp"}},
		// Go names and JSON names do not mix: the Go pass fails at .Id, the JSON pass at .ID.
		{name: "inspect Id and ID", code: 1, args: []string{"network", "inspect", "-f", "{{len .Id}} {{len .ID}}", "fmtapp"}},
		{name: "inspect range IPAM.Config", args: []string{"network", "inspect", "-f",
			"{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}}", "fmtapp"}},
		{name: "inspect index JSON list", args: []string{"network", "inspect", "-f",
			"{{(index .IPAM.Config 0).Subnet}} {{json .IPAM.Config}}", "fmtapp"}},
		{name: "inspect fields", args: []string{"network", "inspect", "-f",
			`{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.EnableIPv6}} {{.Attachable}} {{json .Labels}} {{.Labels}} ` +
				`{{index .Options "com.docker.network.driver.mtu"}} {{len .Containers}} {{.IPAM.Driver}}`, "fmtapp", "fmtback"}},
		{name: "inspect functions", args: []string{"network", "inspect", "-f",
			`{{upper .Name}} {{title .Name}} {{truncate .Name 3}} {{join (split .Name "a") "-"}} [{{pad .Name 1 1}}] {{println .Driver}}x`, "fmtapp"}},
		{name: "inspect unknown field", code: 1, args: []string{"network", "inspect", "-f", "{{.Nope}}", "fmtapp"}},
		{name: "inspect bad template", code: 64, args: []string{"network", "inspect", "-f", "{{.Name", "fmtapp"}},
		{name: "ls fields", lines: "fmt", args: []string{"network", "ls", "--format",
			`{{.Name}}|{{.Driver}}|{{.Scope}}|{{.IPv6}}|{{.Internal}}|{{.Label "a"}}|{{.Label "b"}}|{{len .ID}}`}},
		// Docker's network ls joins labels in map order, so only one label compares.
		{name: "ls labels", lines: "fmtback", args: []string{"network", "ls", "--format", `{{.Name}}|{{.Labels}}`}},
		{name: "ls no-trunc", lines: "fmt", args: []string{"network", "ls", "--no-trunc", "--format", `{{.Name}}\t{{len .ID}}`}},
		{name: "ls table header", lines: "NAME", args: []string{"network", "ls", "--format",
			`table {{.Name}}\t{{.Driver}}\t{{.Labels}}\t{{.Label "a"}}`}},
		{name: "ls default header", lines: "NETWORK ID", args: []string{"network", "ls"}},
		{name: "ls unknown field", code: 1, args: []string{"network", "ls", "--format", "{{.Nope}}"}},
		{name: "ls bad template", code: 1, args: []string{"network", "ls", "--format", "{{.Name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want := berth(tc.args...), docker(tc.args...)
			want.out, want.err = same.Replace(want.out), same.Replace(want.err)
			if tc.lines != "" {
				got.out, want.out = linesWith(got.out, tc.lines), linesWith(want.out, tc.lines)
			}
			if want.code != tc.code || (tc.code == 0 && strings.TrimSpace(want.out) == "") {
				t.Fatalf("docker %s: %+v; want exit %d and output", strings.Join(tc.args, " "), want, tc.code)
			}
			if got != want {
				t.Errorf("berth %s:\n got %+v\nwant %+v (docker)", strings.Join(tc.args, " "), got, want)
			}
		})
	}

	// The issue's own examples, on berth's IDs.
	id := d.must("network", "inspect", "-f", "{{.Id}}", "fmtapp")
	if len(id) != 64 || d.must("network", "inspect", "-f", "{{.ID}}", "fmtapp") != id {
		t.Errorf("inspect -f {{.Id}}: got %q; want the 64-hex ID, the same as {{.ID}}", id)
	}
	if ls := d.must("network", "ls", "--no-trunc", "--format", "{{.Name}} {{.ID}}"); !strings.Contains(ls, "fmtapp "+id+"\n") {
		t.Errorf("ls --no-trunc: %q lacks fmtapp's ID %s", ls, id)
	}
	if ls := d.must("network", "ls", "-q"); !strings.Contains(ls, id[:12]+"\n") {
		t.Errorf("ls -q: %q lacks %s", ls, id[:12])
	}
}

// TestFormatSandboxes: ps --format on a real sandbox with published and exposed ports,
// in docker ps's words (docker 28's [::] for the IPv6 binding), and sandbox inspect -f by
// Go and JSON names.
func TestFormatSandboxes(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.83.0.0/24", "fmtnet")
	d.must("network", "create", "--subnet", "10.84.0.0/24", "fmtback")
	d.must("sandbox", "create", "--name", "web", "--network", "fmtnet", "-p", "8080:80", "-p", "127.0.0.1:9000-9001:9000-9001/udp",
		"--expose", "7000", "--label", "z=1", "--label", "a=2", "--ip", "10.83.0.5")
	d.must("network", "connect", "--ip", "10.84.0.6", "fmtback", "web")
	got := d.must("ps", "--format", `{{.Names}}|{{.Networks}}|{{.IPAddresses}}|{{.Ports}}|{{.Labels}}|{{.Label "z"}}|{{.State}}|{{len .ID}}`)
	want := "web|fmtnet,fmtback|10.83.0.5,10.84.0.6|7000/tcp, 127.0.0.1:9000-9001->9000-9001/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp|a=2,z=1|1|ready|12"
	if got != want {
		t.Errorf("ps --format:\n got %q\nwant %q", got, want)
	}
	if got := d.must("ps", "--format", "table {{.Names}}\t{{.Label \"z\"}}"); got != "NAMES     z\nweb       1" {
		t.Errorf("ps table: got %q", got)
	}
	id := d.must("sandbox", "inspect", "-f", "{{.Id}}", "web")
	if got := d.must("ps", "--no-trunc", "-q"); got != id {
		t.Errorf("ps --no-trunc -q: got %q; want %q", got, id)
	}
	key := d.must("sandbox", "inspect", "-f", "{{.SandboxKey}}", "web")
	if key == "" || d.must("sandbox", "inspect", "-f", "{{.NetNSPath}}", "web") != key {
		t.Errorf("sandbox inspect: {{.SandboxKey}} %q and {{.NetNSPath}} differ or are empty", key)
	}
	if got := d.must("sandbox", "inspect", "-f", `{{range $n, $e := .Networks}}{{$n}}={{$e.IPAddress}} {{end}}`, "web"); got != "fmtback=10.84.0.6 fmtnet=10.83.0.5" {
		t.Errorf("sandbox inspect range: got %q", got)
	}
}

// linesWith keeps the lines of out that start with prefix.
func linesWith(out, prefix string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
