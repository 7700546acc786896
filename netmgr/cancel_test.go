package netmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/api"
)

// worldState is everything a change can leave behind, as text: the records (but counters,
// which only ever move forward), the fake kernel's objects and the files under the test's
// directories (intent files included).
func worldState(t *testing.T, m *Manager, k *fakeKernel) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	snap := m.cfg.Store.Snapshot()
	for _, n := range snap.Networks() {
		enc.Encode(n)
		enc.Encode(snap.NetworkAddresses(n.ID))
	}
	for _, sb := range snap.Sandboxes() {
		enc.Encode(sb)
		enc.Encode(snap.SandboxEndpoints(sb.ID))
		enc.Encode(snap.SandboxFiles(sb.ID))
	}
	k.mu.Lock()
	for _, m := range []any{k.links, k.netns, k.uts, k.gw} {
		enc.Encode(m) // maps encode with sorted keys
	}
	k.mu.Unlock()
	root := filepath.Dir(m.cfg.FilesDir)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		fmt.Fprintf(&b, "%s %q %v\n", strings.TrimPrefix(path, root), data, err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// cancelAtEachStep runs op once per kernel change it makes, each time with a context that is
// cancelled during the next change (the first, then the second, ...), and checks that the
// cancelled op fails with context.Canceled and leaves the world as it was. The last run
// cancels nothing and must succeed. setup makes a fresh world for each run.
func cancelAtEachStep(t *testing.T, setup func(t *testing.T) (*Manager, *fakeKernel), op func(ctx context.Context, m *Manager) error) {
	for step := 1; ; step++ {
		m, k := setup(t)
		before := worldState(t, m, k)
		ctx, cancel := context.WithCancel(t.Context())
		var ops []string
		k.mu.Lock()
		k.done = func(op string) {
			ops = append(ops, op)
			if len(ops) == step {
				cancel()
			}
		}
		k.mu.Unlock()
		err := op(ctx, m)
		k.mu.Lock()
		k.done = nil
		k.mu.Unlock()
		cancel()
		if len(ops) < step {
			// Fewer changes than step: nothing was cancelled.
			if err != nil {
				t.Fatalf("uncancelled run failed: %v", err)
			}
			if step == 1 {
				t.Fatal("no kernel change made: nothing to cancel")
			}
			t.Logf("cancelled during each of %v", ops)
			return
		}
		at := ops[step-1]
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled during change %d (%s): err = %v; want context.Canceled", step, at, err)
		}
		m.Settle()
		if after := worldState(t, m, k); after != before {
			t.Errorf("cancelled during change %d (%s, then %v): the world changed:\n%s", step, at, ops[step:], lineDiff(after, before))
		}
	}
}

// TestCancelCreateSandbox: a create whose context is cancelled during any of its kernel
// steps (netns, UTS namespace, each veth, routes) undoes all of them, as a failed step does.
func TestCancelCreateSandbox(t *testing.T) {
	setup := func(t *testing.T) (*Manager, *fakeKernel) {
		m, k := newTestManager(t)
		mustNetwork(t, m, api.NetworkCreate{Name: "app"})
		mustNetwork(t, m, api.NetworkCreate{Name: "back"})
		mustSandbox(t, m, api.SandboxCreate{Name: "db", Networks: []string{"app"}})
		return m, k
	}
	cancelAtEachStep(t, setup, func(ctx context.Context, m *Manager) error {
		_, err := m.CreateSandbox(ctx, api.SandboxCreate{Name: "web", Hostname: "web.local",
			Networks: []string{"app", "back"}, Aliases: []string{"www"}})
		return err
	})
}

// TestCancelConnect: a connect cancelled during its veth or its routes drops the endpoint
// again, with its addresses and the file hashes it recorded ahead, and puts the routes back.
func TestCancelConnect(t *testing.T) {
	setup := func(t *testing.T) (*Manager, *fakeKernel) {
		m, k := newTestManager(t)
		mustNetwork(t, m, api.NetworkCreate{Name: "inside", Internal: true})
		mustNetwork(t, m, api.NetworkCreate{Name: "app"})
		mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"inside"}})
		mustSandbox(t, m, api.SandboxCreate{Name: "db", Networks: []string{"app"}})
		return m, k
	}
	cancelAtEachStep(t, setup, func(ctx context.Context, m *Manager) error {
		// The first non-internal network: the connect changes web's default route.
		return m.Connect(ctx, api.NetworkConnect{Network: "app", Sandbox: "web", Aliases: []string{"www"}})
	})
}

// TestCancelCreateNetwork: a network create cancelled during its bridge removes the bridge
// and the record.
func TestCancelCreateNetwork(t *testing.T) {
	cancelAtEachStep(t, newTestManager, func(ctx context.Context, m *Manager) error {
		_, err := m.CreateNetwork(ctx, api.NetworkCreate{Name: "app"})
		return err
	})
}

// TestDeadlinePassed: no change starts once its deadline has passed.
func TestDeadlinePassed(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	mustNetwork(t, m, api.NetworkCreate{Name: "empty"})
	mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	before := worldState(t, m, k)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	changes := map[string]func() error{
		"create sandbox": func() error {
			_, err := m.CreateSandbox(ctx, api.SandboxCreate{Name: "new", Networks: []string{"app"}})
			return err
		},
		"create network": func() error {
			_, err := m.CreateNetwork(ctx, api.NetworkCreate{Name: "new"})
			return err
		},
		"connect":        func() error { return m.Connect(ctx, api.NetworkConnect{Network: "empty", Sandbox: "web"}) },
		"disconnect":     func() error { return m.Disconnect(ctx, api.NetworkDisconnect{Network: "app", Sandbox: "web"}) },
		"rename":         func() error { return m.RenameSandbox(ctx, api.SandboxRename{Sandbox: "web", Name: "web2"}) },
		"remove sandbox": func() error { return m.RemoveSandbox(ctx, api.SandboxRemove{Sandbox: "web", Force: true}) },
		"remove network": func() error { return m.RemoveNetwork(ctx, api.NetworkRemove{Network: "empty"}) },
		"prune": func() error {
			_, err := m.PruneNetworks(ctx, nil)
			return err
		},
	}
	for _, name := range slices.Sorted(maps.Keys(changes)) {
		if err := changes[name](); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: err = %v; want context.DeadlineExceeded", name, err)
		}
		if after := worldState(t, m, k); after != before {
			t.Errorf("%s: the world changed:\n%s", name, lineDiff(after, before))
		}
	}
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "new", Networks: []string{"app"}}); err != nil {
		t.Errorf("create with a live context after them: %v", err)
	}
}

// lineDiff lists the lines of got that want lacks (+) and those of want that got lacks (-).
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	return b.String()
}
