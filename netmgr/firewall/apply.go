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

// Firewall installs rulesets in the current netns and remembers what it installed, so
// that the next Apply costs what changed: it finds the networks, ports and links that
// differ and sends only the set elements they add or remove. Its first Apply, and any
// Apply after a failure, in another netns, or when a table appears or goes, rebuilds
// berth's tables from scratch in one batch, which removes whatever is stale. The zero
// value is ready to use; a Firewall is safe for concurrent use.
type Firewall struct {
	mu sync.Mutex
	// guards following
	live     *live           // what the last Apply installed, or nil: rebuild next time
	netns    uint64          // inode of the netns live is installed in
	localnet map[string]bool // bridges in localnet whose route_localnet is set
	pending  map[string]bool // bridges in localnet whose route_localnet is not set yet
}

// std is the Firewall behind the package-level Apply and Remove, as a daemon has one
// netns and one set of berth tables.
var std Firewall

// Apply makes berth's tables in the current netns exactly the ruleset of s (see
// Firewall.Apply), with the package's Firewall.
func Apply(s State) error { return std.Apply(s) }

// Apply makes berth's tables in the current netns exactly the ruleset of s (see Ruleset),
// in one netlink batch (one transaction: no moment without rules, nothing half-done on
// error). If the tables hold what the last Apply installed, the batch holds only the
// changed set elements; otherwise (first call, another netns, the tables change shape,
// or that update failed, for example because the tables were removed behind berth's
// back) it deletes each berth table and adds those s needs. Then it sets route_localnet on
// bridges with published IPv4 ports; a bridge that does not exist yet is skipped (and
// tried again at the next Apply). Applying the same State twice gives the same ruleset.
func (f *Firewall) Apply(s State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := netnsID()
	if l := f.live; l != nil && !l.broken && f.netns == ns {
		cs, ok := l.updateRaw(s)
		if !ok {
			in, err := index(s)
			if err != nil {
				return fmt.Errorf("apply firewall: %w", err)
			}
			if ok = l.shape == in.shape(); ok {
				cs = l.update(in)
				l.raw = copyState(s)
			}
		}
		if ok && !l.broken {
			if err := send(func(b *batch) { queueChanges(b, cs) }); err == nil {
				f.noteLocalnet(cs)
				return f.setLocalnet()
			}
		}
		// The tables are not what we left, the kernel refused the change, a table
		// appears or goes, or the counts are out of step: rebuild, which does not
		// depend on what is there.
	}
	f.live = nil
	in, err := index(s)
	if err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	rs, err := Ruleset(s)
	if err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	if err := send(func(b *batch) { rs.rebuild(b) }); err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	f.live, f.netns = newLive(in), ns
	f.live.raw = copyState(s)
	f.localnet, f.pending = map[string]bool{}, map[string]bool{}
	for _, br := range rs.routeLocalnet {
		f.pending[br] = true
	}
	return f.setLocalnet()
}

// Apply installs rs as Apply(State) does, rebuilding berth's tables; the package's
// Firewall forgets what it installed.
func (rs *Rules) Apply() error {
	std.mu.Lock()
	std.live = nil
	std.mu.Unlock()
	if err := send(func(b *batch) { rs.rebuild(b) }); err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	f := &Firewall{localnet: map[string]bool{}, pending: map[string]bool{}}
	for _, br := range rs.routeLocalnet {
		f.pending[br] = true
	}
	return f.setLocalnet()
}

// noteLocalnet follows the changes of the localnet set: a bridge that leaves it is
// forgotten (one created again under its name starts with route_localnet=0).
func (f *Firewall) noteLocalnet(cs []change) {
	for _, c := range cs {
		if c.family != nftables.TableFamilyIPv4 || c.set.name != setLocalnet {
			continue
		}
		for _, e := range c.dels {
			delete(f.localnet, bridgeName(e.key))
			delete(f.pending, bridgeName(e.key))
		}
		for _, e := range c.adds {
			f.pending[bridgeName(e.key)] = true
		}
	}
}

// setLocalnet sets route_localnet on the pending bridges. Call with f.mu held.
func (f *Firewall) setLocalnet() error {
	for br := range f.pending {
		err := writeSysctl(filepath.Join("/proc/sys/net/ipv4/conf", br, "route_localnet"))
		switch {
		case err == nil:
			delete(f.pending, br)
			f.localnet[br] = true
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("apply firewall: %w", err)
		}
	}
	return nil
}

// Remove deletes berth's tables from the current netns; absent tables are fine. The daemon
// does not call it on shutdown (published ports and NAT outlive the daemon, as Docker's
// do); it is for tests and uninstalling. route_localnet settings are left as they are, and
// so is the user table (table inet berth, user.go): it holds the admin's rules, which only
// the admin removes (nft delete table inet berth).
func Remove() error {
	std.mu.Lock()
	std.live = nil
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

// rebuild queues the deletion of each berth table and the creation of those of rs, and
// makes sure of the user table, which it never deletes (user.go).
func (rs *Rules) rebuild(b *batch) {
	deleteTables(b)
	for _, t := range rs.tables {
		t.install(b)
	}
	ensureUser(b)
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
