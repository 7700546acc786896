package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"berth/api"
	"berth/api/client"
)

// TestClientGoneMidCreate: a client that gives up while its sandbox create is half made
// (the daemon paused at each step in turn, BERTH_PAUSE_AT) leaves nothing behind: no
// record, no netns, veth, file or address, and the same name and address can be created
// at once. The request's context is cancelled when the connection closes, and netmgr undoes
// what it made; past the commit, the daemon removes the sandbox again.
func TestClientGoneMidCreate(t *testing.T) {
	for _, step := range []string{"sandbox-create:recorded", "sandbox-create:netns", "sandbox-create:veth",
		"sandbox-create:files", "sandbox-create:ready"} {
		t.Run(step, func(t *testing.T) {
			d := newDaemon(t)
			d.env = []string{"BERTH_PAUSE_AT=" + step}
			d.start()
			d.must("network", "create", "--subnet", "10.84.0.0/24", "app")
			d.must("sandbox", "create", "--name", "stay", "--network", "app")
			c, err := client.New("unix://" + d.sock)
			if err != nil {
				t.Fatal(err)
			}
			// The daemon pauses a second at the step; the client gives up well before.
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err = c.CreateSandbox(ctx, api.SandboxCreate{Name: "gone", Networks: []string{"app"}, IPv4: "10.84.0.50"})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("create with a client that gives up: %v; want its deadline exceeded", err)
			}
			// Wait for the daemon to finish undoing: the pause, then the rollback.
			deadline := time.Now().Add(10 * time.Second)
			for {
				out := d.must("sandbox", "ls", "--format", "{{.Name}}")
				if !strings.Contains(out, "gone") || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(pauseSettle)
			if out := d.must("sandbox", "ls", "--format", "{{.Name}}"); strings.TrimSpace(out) != "stay" {
				t.Errorf("sandboxes after the client left: %q; want only stay", out)
			}
			checkConsistent(t, d)
			// Name and address are free again.
			d.must("sandbox", "create", "--name", "gone", "--network", "app", "--ip", "10.84.0.50")
			if got := d.ip("gone", "app"); got != "10.84.0.50" {
				t.Errorf("recreated sandbox got %s; want 10.84.0.50", got)
			}
		})
	}
}

// pauseSettle covers the rest of the daemon's pause (netmgr's pauseFor, 1 s) after the
// client has given up, so the rollback is done before the checks.
const pauseSettle = 1500 * time.Millisecond
