package firewall

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Firewall installs rulesets in the current netns and remembers the last one it
// installed, so that the next Apply sends only the difference: the set elements, and the
// chains of the bridge table, that changed. Its first Apply, and any Apply after a
// failure or in another netns, rebuilds berth's tables from scratch in one batch, which
// removes whatever is stale. The zero value is ready to use; a Firewall is safe for
// concurrent use.
type Firewall struct {
	mu sync.Mutex
	// guards following
	last     *Rules          // installed by the last Apply, or nil: rebuild next time
	netns    uint64          // inode of the netns last is installed in
	localnet map[string]bool // bridges whose route_localnet was set since the last rebuild
}

// std is the Firewall behind the package-level Apply and Remove, as a daemon has one
// netns and one set of berth tables.
var std Firewall

// Apply makes berth's tables in the current netns exactly the ruleset of s (see
// Firewall.Apply), with the package's Firewall.
func Apply(s State) error { return std.Apply(s) }

// Apply makes berth's tables in the current netns exactly the ruleset of s, in one netlink
// batch (one transaction: no moment without rules, nothing half-done on error). If the
// tables hold what the last Apply installed, the batch holds only the changes; otherwise
// (first call, another netns, or that update failed, for example because the tables were
// removed behind berth's back) it deletes each berth table and adds those s needs. Then
// it sets route_localnet on bridges with published IPv4 ports; a bridge that does not
// exist yet is skipped (call Apply again once it does). Applying the same State twice
// gives the same ruleset.
func (f *Firewall) Apply(s State) error {
	rs, err := Ruleset(s)
	if err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := netnsID()
	if f.last != nil && f.netns == ns {
		if err := send(func(b *batch) { rs.update(b, f.last) }); err == nil {
			f.last = rs
			return f.setLocalnet(rs)
		}
		// The tables are not what we left (or the kernel refused the change): fall
		// back to a rebuild, which does not depend on what is there.
	}
	f.last, f.localnet = nil, nil
	if err := send(func(b *batch) { rs.rebuild(b) }); err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	f.last, f.netns = rs, ns
	return f.setLocalnet(rs)
}

// Apply installs rs as Apply(State) does, rebuilding berth's tables; it does not change
// what the package's Firewall remembers.
func (rs *Rules) Apply() error {
	std.mu.Lock()
	std.last = nil // the next package-level Apply must not assume its own tables
	std.mu.Unlock()
	if err := send(func(b *batch) { rs.rebuild(b) }); err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	return (&Firewall{}).setLocalnet(rs)
}

// setLocalnet sets route_localnet on the bridges of rs that need it and are not known to
// have it since the last rebuild. Call with f.mu held.
func (f *Firewall) setLocalnet(rs *Rules) error {
	done := make(map[string]bool, len(rs.routeLocalnet))
	for _, br := range rs.routeLocalnet {
		if f.localnet[br] {
			done[br] = true
			continue
		}
		err := writeSysctl(filepath.Join("/proc/sys/net/ipv4/conf", br, "route_localnet"))
		switch {
		case err == nil:
			done[br] = true
		case !errors.Is(err, os.ErrNotExist):
			f.localnet = done
			return fmt.Errorf("apply firewall: %w", err)
		}
	}
	// Bridges no longer listed are dropped: one created again under the same name
	// starts with route_localnet=0.
	f.localnet = done
	return nil
}

// Remove deletes berth's tables from the current netns; absent tables are fine. The daemon
// does not call it on shutdown (published ports and NAT outlive the daemon, as Docker's
// do); it is for tests and uninstalling. route_localnet settings are left as they are.
func Remove() error {
	std.mu.Lock()
	std.last = nil
	std.mu.Unlock()
	if err := send(deleteTables); err != nil {
		return fmt.Errorf("remove firewall: %w", err)
	}
	return nil
}

// netnsID identifies the calling thread's netns (0 if unknown: then every Apply rebuilds).
func netnsID() uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0
	}
	return st.Ino
}

// rebuild queues the deletion of each berth table and the creation of those of rs.
func (rs *Rules) rebuild(b *batch) {
	deleteTables(b)
	for _, t := range rs.tables {
		t.install(b)
	}
}

// deleteTables queues the deletion of every berth table. Each is first added (a no-op if
// it exists), so that deleting a missing table cannot fail the batch (moby #45646).
func deleteTables(b *batch) {
	for _, f := range families {
		t := &nftables.Table{Name: TableName, Family: f}
		b.c.AddTable(t)
		b.c.DelTable(t)
		b.msgs += 2
	}
}

// install queues t: its sets with their elements, its chains, then their rules (a rule
// may jump to a chain listed after its own).
func (t *table) install(b *batch) {
	nt := b.c.AddTable(&nftables.Table{Name: TableName, Family: t.family})
	b.msgs++
	for _, s := range t.sets {
		b.addSet(s.nft(nt))
		b.addElements(s, s.nft(nt), s.elems)
	}
	for _, ch := range t.chains {
		ch.add(b, nt)
	}
	for _, ch := range t.chains {
		ch.addRules(b, nt)
	}
}

func (ch *chain) nft(t *nftables.Table) *nftables.Chain {
	c := &nftables.Chain{Name: ch.name, Table: t}
	if ch.hook != nil {
		accept := nftables.ChainPolicyAccept
		c.Type, c.Hooknum, c.Priority, c.Policy = ch.typ, ch.hook, ch.priority, &accept
	}
	return c
}

func (ch *chain) add(b *batch, t *nftables.Table) {
	b.c.AddChain(ch.nft(t))
	b.msgs++
}

func (ch *chain) addRules(b *batch, t *nftables.Table) {
	c := ch.nft(t)
	for _, r := range ch.rules {
		b.c.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: r.exprs})
		b.rules++
	}
}

// EnableForwarding turns on IPv4 forwarding (and IPv6 forwarding for all interfaces if v6)
// in the current netns, as Docker does when a non-internal network exists. It never turns
// forwarding off. Enabling IPv6 forwarding makes the kernel ignore router advertisements
// on interfaces with accept_ra=1.
func EnableForwarding(v6 bool) error {
	paths := []string{"/proc/sys/net/ipv4/ip_forward"}
	if v6 {
		paths = append(paths, "/proc/sys/net/ipv6/conf/all/forwarding")
	}
	for _, p := range paths {
		if err := writeSysctl(p); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
	}
	return nil
}

// writeSysctl sets the sysctl at path to 1 unless it already is. /proc/sys/net is the
// netns of the calling thread.
func writeSysctl(path string) error {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	return os.WriteFile(path, []byte("1\n"), 0o644)
}
