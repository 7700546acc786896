package netmgr

import (
	"context"
	"strings"
	"time"
)

// Keeping the firewall in place. Other programs change the ruleset too: an admin's
// `nft flush ruleset` or `iptables -F`, dockerd or firewalld (re)starting. A background
// loop checks, periodically and soon after another program's change, that berth's tables
// hold what was applied and that its accept rules in other programs' forward chains are
// there, and repairs what is not, logging what it repaired.

// FirewallRepair configures Manager.RepairFirewall. The funcs are firewall.Missing,
// firewall.RecheckForward and firewall.Forget in the daemon.
type FirewallRepair struct {
	Interval time.Duration   // between periodic checks; > 0
	Changes  <-chan struct{} // a value after other programs' ruleset changes (firewall.Changes); or nil
	// Debounce is how long the ruleset must be quiet after a change before the check, so
	// that a burst of changes (a dockerd start is dozens of iptables runs) is one check,
	// made once the burst is over. 0: 200 ms.
	Debounce time.Duration

	Missing func() ([]string, error) // what of berth's tables is gone
	Recheck func() ([]string, error) // re-adds berth's rules in others' chains; what it added
	Forget  func()                   // makes the next apply rebuild berth's tables
}

// defaultDebounce is longer than the gap between the commands of a script of iptables or
// nft runs (a few ms each), short enough that traffic cut by the change is back within a
// fraction of a second.
const defaultDebounce = 200 * time.Millisecond

// maxSettle bounds the wait for quiet: a program that changes the ruleset without pause
// must not keep the repair away for ever.
const maxSettle = 2 * time.Second

// RepairFirewall checks the firewall every r.Interval and after each change on r.Changes
// until ctx is done (see CheckFirewall). It does nothing without a Firewall.
func (m *Manager) RepairFirewall(ctx context.Context, r FirewallRepair) {
	if m.cfg.Firewall == nil {
		return
	}
	if r.Debounce <= 0 {
		r.Debounce = defaultDebounce
	}
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	changes := r.Changes
	var lastErr string // a failure that repeats is logged once
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case _, ok := <-changes:
			if !ok {
				changes = nil // the monitor is gone: periodic checks only
				continue
			}
			if !settle(ctx, changes, r.Debounce) {
				return
			}
		}
		err := m.CheckFirewall(r)
		switch {
		case err == nil:
			lastErr = ""
		case err.Error() != lastErr:
			lastErr = err.Error()
			m.cfg.Log.Warn("firewall check", "err", err)
		}
	}
}

// CheckFirewall checks the firewall once and repairs it: berth's tables, if anything of
// them is gone or the last apply failed, are rebuilt through the normal apply of the
// records (under the manager's lock, so no change interleaves); then the accept rules in
// other programs' chains are put back. Each repair is logged at Warn with what was
// repaired. A check that finds everything in place changes nothing.
func (m *Manager) CheckFirewall(r FirewallRepair) error {
	if m.cfg.Firewall == nil {
		return nil
	}
	gone, err := r.Missing()
	if err != nil {
		return err
	}
	m.mu.Lock()
	failed := m.applied == nil
	if len(gone) > 0 || failed {
		r.Forget()
		m.applied = nil
		err = m.syncFirewall()
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	switch {
	case len(gone) > 0:
		m.cfg.Log.Warn("firewall repaired", "what", strings.Join(gone, "; "))
	case failed:
		m.cfg.Log.Warn("firewall repaired", "what", "applied again after a failed apply")
	}
	// After a rebuild too: its apply opened the chains already, so this finds them in place.
	added, err := r.Recheck()
	if len(added) > 0 {
		m.cfg.Log.Warn("firewall repaired", "what", strings.Join(added, "; "))
	}
	return err
}

// settle waits until changes has been quiet for debounce (or maxSettle has passed): the
// changes meanwhile are covered by the check that follows. It is false if ctx is done.
func settle(ctx context.Context, changes <-chan struct{}, debounce time.Duration) bool {
	quiet := time.NewTimer(debounce)
	defer quiet.Stop()
	limit := time.NewTimer(maxSettle)
	defer limit.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case _, ok := <-changes:
			if !ok {
				return true // the caller sees the close at its next receive
			}
			quiet.Reset(debounce)
		case <-quiet.C:
			return true
		case <-limit.C:
			return true
		}
	}
}
