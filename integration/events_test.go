package integration

import (
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
