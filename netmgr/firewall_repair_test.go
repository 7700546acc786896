package netmgr

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/netmgr/firewall"
	"berth/store"
)

// repairRig is a Manager over the fake kernel whose firewall and checks are counted.
type repairRig struct {
	m   *Manager
	log *bytes.Buffer

	mu      sync.Mutex // guards following
	applies int
	missing []string // what the next Missing reports
	checks  int
	forgets int
	recheck []string
}

func newRepairRig(t *testing.T) *repairRig {
	t.Helper()
	r := &repairRig{log: &bytes.Buffer{}}
	dir := t.TempDir()
	r.m = New(Config{Store: store.NewMemory(), Kernel: newFakeKernel(), Log: slog.New(slog.NewTextHandler(r.log, nil)),
		NetNSDir: dir + "/netns", FilesDir: dir + "/etc", RunDir: dir + "/state",
		Firewall: func(firewall.State) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.applies++
			return nil
		}})
	if err := r.m.Restore(t.Context()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	r.applies = 0
	r.log.Reset()
	return r
}

func (r *repairRig) config() FirewallRepair {
	return FirewallRepair{Interval: time.Hour, Debounce: 20 * time.Millisecond,
		Missing: func() ([]string, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.checks++
			gone := r.missing
			r.missing = nil
			return gone, nil
		},
		Recheck: func() ([]string, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			added := r.recheck
			r.recheck = nil
			return added, nil
		},
		Forget: func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.forgets++
		}}
}

func TestCheckFirewall(t *testing.T) {
	for _, tc := range []struct {
		name           string
		missing        []string
		recheck        []string
		failedBefore   bool
		applies, forgt int
		log            string // "" : nothing logged
	}{
		{name: "all in place"},
		{name: "table gone", missing: []string{"table ip berth", "table ip6 berth"}, applies: 1, forgt: 1,
			log: `msg="firewall repaired" what="table ip berth; table ip6 berth"`},
		{name: "last apply failed", failedBefore: true, applies: 1, forgt: 1,
			log: `what="applied again after a failed apply"`},
		{name: "foreign rules gone", recheck: []string{"ip filter DOCKER-USER: 2 accept rules added"},
			log: `msg="firewall repaired" what="ip filter DOCKER-USER: 2 accept rules added"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepairRig(t)
			r.missing, r.recheck = tc.missing, tc.recheck
			if tc.failedBefore {
				r.m.applied = nil
			}
			if err := r.m.CheckFirewall(r.config()); err != nil {
				t.Fatal(err)
			}
			if r.applies != tc.applies || r.forgets != tc.forgt {
				t.Errorf("applies %d, forgets %d; want %d, %d", r.applies, r.forgets, tc.applies, tc.forgt)
			}
			log := r.log.String()
			if tc.log == "" && strings.Contains(log, "firewall repaired") || !strings.Contains(log, tc.log) {
				t.Errorf("log:\n%s\nwant %q", log, tc.log)
			}
		})
	}
}

func TestCheckFirewallError(t *testing.T) {
	r := newRepairRig(t)
	cfg := r.config()
	cfg.Missing = func() ([]string, error) { return nil, errors.New("check firewall: boom") }
	if err := r.m.CheckFirewall(cfg); err == nil || r.applies != 0 {
		t.Errorf("CheckFirewall with a failing check: %v, %d applies; want the error and no apply", err, r.applies)
	}
}

// TestRepairFirewallDebounce: a burst of changes is one check, made once they stop.
func TestRepairFirewallDebounce(t *testing.T) {
	r := newRepairRig(t)
	changes := make(chan struct{}, 1)
	cfg := r.config()
	cfg.Changes = changes
	// 100 times the gap between changes, so a loaded machine (a 5 ms sleep taking 20 ms
	// or more) still sees one burst.
	cfg.Debounce = 500 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.m.RepairFirewall(ctx, cfg); close(done) }()
	for range 10 {
		changes <- struct{}{}
		time.Sleep(5 * time.Millisecond) // shorter than Debounce: still one burst
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := r.checks
		r.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(cfg.Debounce + 100*time.Millisecond) // time for a second check, which must not come
	cancel()
	<-done
	if r.checks != 1 {
		t.Errorf("%d checks after a burst of 10 changes; want 1", r.checks)
	}
}
