package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEvents: `berth events` streams every change, and --since replays the daemon's start.
func TestEvents(t *testing.T) {
	d := newDaemon(t)
	d.start()
	var out bytes.Buffer
	ev := exec.Command(d.bin, "events", "--since", "1h", "--format", "json")
	ev.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.sock)
	ev.Stdout = &out
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ev.Wait() }()
	time.Sleep(200 * time.Millisecond) // let the stream connect
	d.must("network", "create", "--subnet", "10.57.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	d.must("network", "connect", "bridge", "web")
	d.must("network", "disconnect", "bridge", "web")
	d.must("sandbox", "rename", "web", "www")
	d.must("sandbox", "rm", "-f", "www")
	d.must("network", "rm", "app")
	time.Sleep(200 * time.Millisecond)
	d.stop() // ends the stream: the client exits by itself
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		ev.Process.Kill()
		t.Fatal("berth events did not end when the daemon stopped")
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct{ Type, Action, Name, Network, OldName string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		got = append(got, strings.TrimSpace(strings.Join([]string{e.Type, e.Action, e.Name, e.Network, e.OldName}, " ")))
	}
	want := []string{
		"daemon restart " + d.root,
		"network create app",
		"sandbox create web",
		"sandbox connect web bridge",
		"sandbox disconnect web bridge",
		"sandbox rename www  web",
		"sandbox rm www",
		"network rm app",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestEventsLive: each event reaches a reader of `berth events` while the stream is open
// and the daemon keeps running, right after the change (issue 14.4: a wrapper hid Flush,
// so events arrived only when the stream ended). The time from the command's start to the
// line's arrival (an upper bound of the event's latency) is logged, not asserted: the bound
// here only tells "streamed" from "held until the end".
func TestEventsLive(t *testing.T) {
	d := newDaemon(t)
	d.start()
	ev := exec.Command(d.bin, "events", "--format", "{{.Type}} {{.Action}} {{.Name}}")
	ev.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.sock)
	stdout, err := ev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ev.Process.Kill(); ev.Wait() }()
	type line struct {
		text string
		at   time.Time
	}
	lines := make(chan line, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
		close(lines)
	}()
	// The stream is connected once the first change shows up; until then, retry with
	// networks of their own so nothing is missed or doubled.
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.58.0.0/24", "live"}, "network create live"},
		{[]string{"sandbox", "create", "--name", "s1", "--network", "live"}, "sandbox create s1"},
		{[]string{"sandbox", "rename", "s1", "s2"}, "sandbox rename s2"},
		{[]string{"sandbox", "rm", "-f", "s2"}, "sandbox rm s2"},
		{[]string{"network", "rm", "live"}, "network rm live"},
	}
	time.Sleep(300 * time.Millisecond) // let the stream connect before the first change
	var worst time.Duration
	for _, st := range steps {
		start := time.Now()
		d.must(st.args...)
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended before %q", st.want)
			}
			if l.text != st.want {
				t.Fatalf("got event %q; want %q", l.text, st.want)
			}
			worst = max(worst, l.at.Sub(start))
		case <-time.After(3 * time.Second):
			t.Fatalf("%q did not reach the reader within 3 s of `berth %s` returning, daemon still running", st.want, strings.Join(st.args, " "))
		}
	}
	t.Logf("slowest event, from its command's start to the reader: %v", worst)
}
