package netmgr

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"berth/api"
	"berth/netmgr/firewall"
)

// recorder is an Observer that notes each change, and whether the Manager's lock was free
// when it was told.
type recorder struct {
	m      *Manager
	mu     sync.Mutex
	got    []string
	seqs   []uint64 // Seq of each created sandbox, in report order
	locked int      // reports made under m.mu
}

func (r *recorder) Changed(c Change) {
	if r.m.mu.TryLock() {
		r.m.mu.Unlock()
	} else {
		r.locked++ // mu held: by the change itself when nothing runs beside it (reports never overlap, so r needs no lock here)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := c.Kind.String()
	if c.Network != nil {
		s += " network=" + c.Network.Name
	}
	if c.Sandbox != nil {
		s += " sandbox=" + c.Sandbox.Name
	}
	if c.OldName != "" {
		s += " old=" + c.OldName
	}
	r.got = append(r.got, s)
	if c.Kind == SandboxCreated {
		r.seqs = append(r.seqs, c.Sandbox.Seq)
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// TestObserver: each change is reported once it is made, after the Manager's lock is
// released; failed changes report nothing, a prune one NetworkRemoved per network.
func TestObserver(t *testing.T) {
	m, k := newTestManager(t)
	r := &recorder{m: m}
	m.cfg.Observer = r
	ctx := t.Context()
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"create network", func() error { _, err := m.CreateNetwork(ctx, api.NetworkCreate{Name: "app"}); return err },
			[]string{"network create network=app"}},
		{"create sandbox", func() error {
			_, err := m.CreateSandbox(ctx, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
			return err
		}, []string{"sandbox create sandbox=web"}},
		{"failed create", func() error {
			k.failOn = "AddVeth"
			_, err := m.CreateSandbox(ctx, api.SandboxCreate{Name: "db", Networks: []string{"app"}})
			return wantErr(err)
		}, nil},
		{"create network back", func() error { _, err := m.CreateNetwork(ctx, api.NetworkCreate{Name: "back"}); return err },
			[]string{"network create network=back"}},
		{"connect", func() error { return m.Connect(ctx, api.NetworkConnect{Network: "back", Sandbox: "web"}) },
			[]string{"sandbox connect network=back sandbox=web"}},
		{"failed connect", func() error { return wantErr(m.Connect(ctx, api.NetworkConnect{Network: "back", Sandbox: "web"})) }, nil},
		{"disconnect", func() error { return m.Disconnect(ctx, api.NetworkDisconnect{Network: "back", Sandbox: "web"}) },
			[]string{"sandbox disconnect network=back sandbox=web"}},
		{"rename", func() error { return m.RenameSandbox(ctx, api.SandboxRename{Sandbox: "web", Name: "web2"}) },
			[]string{"sandbox rename sandbox=web2 old=web"}},
		{"create networks", func() error {
			for _, n := range []string{"p1", "p2"} {
				if _, err := m.CreateNetwork(ctx, api.NetworkCreate{Name: n}); err != nil {
					return err
				}
			}
			return nil
		}, []string{"network create network=p1", "network create network=p2"}},
		{"prune", func() error { _, err := m.PruneNetworks(ctx, nil); return err },
			[]string{"network rm network=back", "network rm network=p1", "network rm network=p2"}},
		{"remove sandbox", func() error { return m.RemoveSandbox(ctx, api.SandboxRemove{Sandbox: "web2", Force: true}) },
			[]string{"sandbox rm sandbox=web2"}},
		{"failed firewall", func() error {
			m.cfg.Firewall = func(firewall.State) error { return fmt.Errorf("no firewall") }
			defer func() { m.cfg.Firewall = nil }()
			_, err := m.CreateSandbox(ctx, api.SandboxCreate{Name: "db", Networks: []string{"app"}})
			return wantErr(err)
		}, nil},
		{"remove network", func() error { return m.RemoveNetwork(ctx, api.NetworkRemove{Network: "app"}) }, []string{"network rm network=app"}},
		{"restore", func() error { return m.Restore(ctx) }, nil},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := r.take(); strings.Join(got, "\n") != strings.Join(s.want, "\n") {
			t.Errorf("%s: reported %q; want %q", s.name, got, s.want)
		}
	}
	if r.locked > 0 {
		t.Errorf("%d reports made under the Manager's lock", r.locked)
	}
}

// wantErr turns an expected failure into nil and an unexpected success into an error.
func wantErr(err error) error {
	if err == nil {
		return fmt.Errorf("succeeded; want a failure")
	}
	return nil
}

// TestObserverOrder: changes made at once are reported one at a time, in commit order.
func TestObserverOrder(t *testing.T) {
	m, _ := newTestManager(t)
	r := &recorder{m: m}
	m.cfg.Observer = r
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: fmt.Sprint("s", i), Networks: []string{"app"}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(r.seqs) != 20 {
		t.Fatalf("%d creates reported; want 20", len(r.seqs))
	}
	for i := 1; i < len(r.seqs); i++ {
		if r.seqs[i] <= r.seqs[i-1] {
			t.Errorf("reported out of commit order: sandbox seqs %v", r.seqs)
			break
		}
	}
}
