package firewall

import (
	"context"
	"fmt"
	"os"
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
// 0, want 12"). Set elements are not compared: taking one out needs someone who means
// to. Nothing installed yet, or the last Apply failed: nothing to compare (nil). It costs
// a listing of the chains, and of the sets and rules of each of berth's tables.
func (f *Firewall) Missing() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.live == nil || f.live.broken || f.netns != netnsID() {
		return nil, nil
	}
	rs, err := Ruleset(f.live.in.state())
	if err != nil {
		return nil, fmt.Errorf("check firewall: %w", err)
	}
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("check firewall: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("check firewall: list chains: %w", err)
	}
	have := map[nftables.TableFamily]map[string]bool{}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != TableName {
			continue
		}
		if have[ch.Table.Family] == nil {
			have[ch.Table.Family] = map[string]bool{}
		}
		have[ch.Table.Family][ch.Name] = true
	}
	var gone []string
	for _, t := range rs.tables {
		fam := familyNames[t.family]
		if have[t.family] == nil {
			gone = append(gone, "table "+fam+" "+TableName)
			continue
		}
		nt := &nftables.Table{Name: TableName, Family: t.family}
		for _, ch := range t.chains {
			if !have[t.family][ch.name] {
				gone = append(gone, fmt.Sprintf("chain %s %s %s", fam, TableName, ch.name))
				continue
			}
			rules, err := c.GetRules(nt, &nftables.Chain{Name: ch.name, Table: nt})
			if err != nil {
				return nil, fmt.Errorf("check firewall: list chain %s %s: %w", fam, ch.name, err)
			}
			if len(rules) != len(ch.rules) {
				gone = append(gone, fmt.Sprintf("rules of chain %s %s %s: %d, want %d", fam, TableName, ch.name, len(rules), len(ch.rules)))
			}
		}
		sets, err := c.GetSets(nt)
		if err != nil {
			return nil, fmt.Errorf("check firewall: list sets of %s %s: %w", fam, TableName, err)
		}
		named := map[string]bool{}
		for _, s := range sets {
			named[s.Name] = true
		}
		for _, s := range t.sets {
			if !named[s.name] {
				gone = append(gone, fmt.Sprintf("set %s %s %s", fam, TableName, s.name))
			}
		}
	}
	return gone, nil
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
