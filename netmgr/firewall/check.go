package firewall

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
)

// Checking what was installed. Another program can take berth's tables away at any time:
// `nft flush ruleset` by an admin, firewalld's start, a script deleting "table ip berth".
// Missing finds it; Forget makes the next Apply rebuild; Changes tells when to look.

// Missing reports what of the package Firewall's last Apply is gone from the current
// netns (see Firewall.Missing).
func Missing() ([]string, error) { return std.Missing() }

// Forget makes the package Firewall's next Apply rebuild berth's tables (see
// Firewall.Forget).
func Forget() { std.Forget() }

// Forget drops what f remembers of the tables it installed, so that its next Apply
// rebuilds them from scratch. The repair of tables changed behind berth's back goes
// through it and the normal Apply, rather than patching them in place.
func (f *Firewall) Forget() {
	f.mu.Lock()
	f.live = nil
	f.mu.Unlock()
}

// Missing compares berth's tables in the current netns with what the last Apply installed
// and reports each table, chain and set that is gone, and each chain whose rules are not
// the number installed, one line each ("table ip berth", "rules of chain ip berth forward:
// 0, want 12"); of the user table, that it and its chains are there (the rules of chain
// user are the admin's: never counted). Set elements are not compared: taking one out
// needs someone who means to. Nothing installed yet, or the last Apply failed: nothing to compare (nil).
//
// It reads the tables and chains, and the rules and sets of berth's tables (a few small dumps: the
// rules are fixed, sets hold what grows). When that reading is what the last check found
// whole, nothing changed and the ruleset is not rendered again (25 ms of CPU with 1,000
// networks and 5,000 ports).
func (f *Firewall) Missing() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.live == nil || f.live.broken || f.netns != netnsID() {
		return nil, nil
	}
	k, err := readTables()
	if err != nil {
		return nil, fmt.Errorf("check firewall: %w", err)
	}
	sum := k.summary()
	checked.mu.Lock()
	// Only a reading seen whole before counts: an empty one (everything flushed) would
	// otherwise equal the zero value before the first check.
	last, ok := checked.whole[f]
	same := ok && last == sum
	checked.mu.Unlock()
	if same {
		return nil, nil
	}
	rs, err := Ruleset(f.live.in.state())
	if err != nil {
		return nil, fmt.Errorf("check firewall: %w", err)
	}
	var gone []string
	for _, t := range rs.tables {
		fam := familyNames[t.family]
		kt := k[t.family]
		if kt == nil {
			gone = append(gone, "table "+fam+" "+TableName)
			continue
		}
		for _, ch := range t.chains {
			n, ok := kt.rules[ch.name]
			switch {
			case !ok:
				gone = append(gone, fmt.Sprintf("chain %s %s %s", fam, TableName, ch.name))
			case n != len(ch.rules):
				gone = append(gone, fmt.Sprintf("rules of chain %s %s %s: %d, want %d", fam, TableName, ch.name, n, len(ch.rules)))
			}
		}
		for _, st := range t.sets {
			if !kt.sets[st.name] {
				gone = append(gone, fmt.Sprintf("set %s %s %s", fam, TableName, st.name))
			}
		}
	}
	gone = append(gone, userMissing(k)...)
	if len(gone) == 0 {
		checked.mu.Lock()
		checked.whole[f] = sum
		checked.mu.Unlock()
	}
	return gone, nil
}

// checked remembers, per Firewall, the reading of the kernel at the last check that found
// berth's tables whole. An Apply changes the reading (the next check renders again) or
// leaves it as it was (nothing to check); someone else's change that leaves exactly the
// reading of a whole earlier state would have to rebuild berth's tables as they were.
var checked = struct {
	mu    sync.Mutex // guards following
	whole map[*Firewall]string
}{whole: map[*Firewall]string{}}

// kernelTable is what Missing reads of one of berth's tables.
type kernelTable struct {
	rules map[string]int  // chain -> number of rules
	sets  map[string]bool // set and map names
}

type kernelTables map[nftables.TableFamily]*kernelTable

// readTables reads berth's tables in the current netns.
func readTables() (kernelTables, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	tables, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	k := kernelTables{}
	for _, t := range tables {
		if t.Name == TableName {
			k[t.Family] = &kernelTable{rules: map[string]int{}, sets: map[string]bool{}}
		}
	}
	if len(k) == 0 {
		return k, nil
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != TableName || k[ch.Table.Family] == nil {
			continue
		}
		kt := k[ch.Table.Family]
		if ch.Table.Family == nftables.TableFamilyINet && ch.Name == UserChain {
			// The admin's rules: only the chain's presence is berth's business, and
			// not counting them keeps a user's edit from looking like a change.
			kt.rules[ch.Name] = 0
			continue
		}
		nt := &nftables.Table{Name: TableName, Family: ch.Table.Family}
		rules, err := c.GetRules(nt, &nftables.Chain{Name: ch.Name, Table: nt})
		if err != nil {
			return nil, fmt.Errorf("list chain %s %s %s: %w", familyName(ch.Table.Family), TableName, ch.Name, err)
		}
		kt.rules[ch.Name] = len(rules)
	}
	for f, kt := range k {
		sets, err := c.GetSets(&nftables.Table{Name: TableName, Family: f})
		if err != nil {
			return nil, fmt.Errorf("list sets of %s %s: %w", familyName(f), TableName, err)
		}
		for _, st := range sets {
			kt.sets[st.Name] = true
		}
	}
	return k, nil
}

// summary is k as one comparable string.
func (k kernelTables) summary() string {
	var lines []string
	for f, kt := range k {
		lines = append(lines, fmt.Sprintf("%d table", f))
		for ch, n := range kt.rules {
			lines = append(lines, fmt.Sprintf("%d chain %s %d", f, ch, n))
		}
		for st := range kt.sets {
			lines = append(lines, fmt.Sprintf("%d set %s", f, st))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// state is in as a State again (order does not matter to Ruleset).
func (in inputs) state() State {
	s := State{Networks: make([]Network, 0, len(in.nets)), Ports: make([]Port, 0, len(in.ports)),
		Links: make([]Link, 0, len(in.links))}
	for _, nw := range in.nets {
		s.Networks = append(s.Networks, nw)
	}
	for p := range in.ports {
		s.Ports = append(s.Ports, p)
	}
	for l := range in.links {
		s.Links = append(s.Links, l)
	}
	return s
}

// monitorRetry is how long Changes waits before listening again after the monitor failed
// (a socket that cannot be opened; an overrun, which is reported as a change).
const monitorRetry = time.Second

// Changes listens for nftables changes in the current netns (the netns of the calling
// thread when it is called) and sends on the returned channel after each transaction
// that another process made; berth's own are skipped (the kernel names the process of
// each generation). Sends never block: a burst of changes leaves one value waiting. If the
// monitor fails (its socket overrun by a burst), that counts as a change and it listens
// again. The channel is closed when ctx is done.
func Changes(ctx context.Context) (<-chan struct{}, error) {
	events, mon, err := monitor()
	if err != nil {
		return nil, err
	}
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	self := uint32(os.Getpid())
	go func() {
		defer close(out)
		defer func() {
			if mon != nil {
				mon.Close()
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if ok {
					if g, isGen := ev.GeneratedBy.Data.(*nftables.GenMsg); !isGen || g.ProcPID != self {
						notify() // another process, or a failure (then the channel closes next)
					}
					continue
				}
				// The monitor ended: listen again; what it missed meanwhile is unknown.
				notify()
				mon.Close()
				for events, mon = nil, nil; mon == nil; {
					select {
					case <-ctx.Done():
						return
					case <-time.After(monitorRetry):
					}
					events, mon, _ = monitor()
				}
			}
		}
	}()
	return out, nil
}

func monitor() (chan *nftables.MonitorEvents, *nftables.Monitor, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, nil, fmt.Errorf("nftables monitor: %w", err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(16))
	events, err := c.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, nil, fmt.Errorf("nftables monitor: %w", err)
	}
	return events, mon, nil
}
