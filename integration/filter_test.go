package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFilters runs the real CLI against a real daemon with each --filter key of network ls,
// sandbox ls, network prune and events, and checks what comes back (the semantics and
// Docker's answers are daemon/filter_test.go's).
func TestFilters(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.61.1.0/24", "--label", "a=1", "--label", "b=", "web1")
	d.must("network", "create", "--subnet", "10.61.2.0/24", "--label", "a=2", "myweb2")
	d.must("network", "create", "--subnet", "10.61.3.0/24", "xy")
	xyID := d.must("network", "inspect", "-f", "{{.Id}}", "xy")
	d.must("sandbox", "create", "--name", "s1", "--network", "xy", "--label", "app=x",
		"-p", "18080:80", "-p", "19000-19001:9000-9001/udp", "--expose", "7000-7002")
	d.must("sandbox", "create", "--name", "db", "--network", "web1", "--expose", "5432")
	s1ID := d.must("sandbox", "inspect", "-f", "{{.Id}}", "s1")

	names := func(args ...string) string {
		t.Helper()
		// Sorted: sandboxes come in ID order, which is random.
		out := strings.Fields(d.must(append(args, "--format", "{{.Name}}")...))
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		args []string
		want string // sorted by name
	}{
		{[]string{"network", "ls", "-f", "name=web"}, "myweb2 web1"},
		{[]string{"network", "ls", "-f", "name=^web"}, "web1"},
		{[]string{"network", "ls", "-f", "id=" + xyID[:10]}, "xy"},
		{[]string{"network", "ls", "-f", "label=a"}, "myweb2 web1"},
		{[]string{"network", "ls", "-f", "label=a=1", "-f", "label=b"}, "web1"},
		{[]string{"network", "ls", "-f", "driver=null"}, "none"},
		{[]string{"network", "ls", "-f", "scope=local", "-f", "name=xy"}, "xy"},
		{[]string{"network", "ls", "-f", "type=builtin"}, "bridge host none"},
		{[]string{"network", "ls", "-f", "type=custom"}, "myweb2 web1 xy"},
		{[]string{"network", "ls", "-f", "dangling=true"}, "myweb2"},
		{[]string{"network", "ls", "--filter", "dangling=false"}, "bridge host none web1 xy"},
		{[]string{"sandbox", "ls", "-f", "name=s"}, "s1"},
		{[]string{"sandbox", "ls", "-f", "id=" + s1ID[:8]}, "s1"},
		{[]string{"sandbox", "ls", "-f", "label=app=x"}, "s1"},
		{[]string{"sandbox", "ls", "-f", "network=web1"}, "db"},
		{[]string{"sandbox", "ls", "-f", "network=" + xyID[:12]}, "s1"},
		{[]string{"ps", "-f", "publish=18080"}, "s1"},
		{[]string{"ps", "-f", "publish=80"}, ""},
		{[]string{"ps", "-f", "publish=19001/udp"}, "s1"},
		{[]string{"ps", "-f", "expose=7001"}, "s1"},
		{[]string{"ps", "-f", "expose=5000-6000"}, "db"},
		{[]string{"ps", "-f", "expose=80", "-f", "expose=5432"}, "db s1"},
	} {
		if got := names(tc.args...); got != tc.want {
			t.Errorf("berth %s: got %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	d.fails("Invalid filter 'foo'", "network", "ls", "-f", "foo=bar")
	d.fails(`invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`, "network", "ls", "-f", "dangling=maybe")
	d.fails("filter for 'publish' should not contain ':': 1:80", "ps", "-f", "publish=1:80")
	d.fails("bad format of filter (expected name=value)", "sandbox", "ls", "-f", "name")

	// prune: until keeps what is newer, label picks, label! spares.
	d.must("network", "create", "--label", "keep=", "p1")
	d.must("network", "create", "--label", "env=dev", "p2")
	d.must("network", "create", "p3")
	d.fails("Invalid filter 'name'", "network", "prune", "--filter", "name=p1")
	d.fails(`failed to parse value as time or duration: "abc"`, "network", "prune", "--filter", "until=abc")
	for _, tc := range []struct {
		filter []string
		want   string
	}{
		{[]string{"until=1h"}, ""}, // all made in the last minute
		{[]string{"label=env=dev"}, "p2"},
		{[]string{"label!=keep", "until=-1m"}, "myweb2 p3"},
		{[]string{"label=keep"}, "p1"},
	} {
		args := []string{"network", "prune", "-f"}
		for _, f := range tc.filter {
			args = append(args, "--filter", f)
		}
		removed := strings.Fields(d.must(args...))
		slices.Sort(removed)
		if got := strings.Join(removed, " "); got != tc.want {
			t.Errorf("berth %s: removed %q, want %q", strings.Join(args, " "), got, tc.want)
		}
	}
	if got := names("network", "ls", "-f", "type=custom"); got != "web1 xy" {
		t.Errorf("after prunes: custom networks %q, want web1 xy", got)
	}

	// events: a stream with a filter sees only the network create that matches.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// --since now: a stream that connects late (a loaded CI machine) still gets the
	// events made after this line, replayed, instead of missing them.
	now := time.Now()
	since := fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond())
	ev := exec.CommandContext(ctx, d.bin, "events", "--since", since, "-f", "type=network", "-f", "event=create", "-f", "network=wanted",
		"--format", "{{.Type}} {{.Action}} {{.Name}}")
	ev.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.sock)
	stdout, err := ev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); ev.Wait() }()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	d.must("network", "create", "other")
	d.must("network", "rm", "other")
	d.must("network", "create", "wanted")
	select {
	case line := <-lines:
		if line != "network create wanted" {
			t.Errorf("first filtered event %q, want network create wanted", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s for network create wanted")
	}

	// --since with --until replays what matches and ends by itself.
	got := d.must("events", "--since", "1h", "--until", "0s", "-f", "event=create", "-f", "type=network",
		"-f", "network=other", "-f", "network=wanted", "--format", "{{.Action}} {{.Name}}")
	if got != "create other\ncreate wanted" {
		t.Errorf("events --since 1h --until 0s: %q, want the creates of other and wanted", got)
	}
	got = d.must("events", "--since", "1h", "--until", "0s", "-f", "sandbox=s1", "--format", "{{.Action}} {{.Name}}")
	if got != "create s1" {
		t.Errorf("events -f sandbox=s1: %q, want create s1", got)
	}
	d.fails("Invalid filter 'foo'", "events", "--until", "0s", "-f", "foo=x")
}
