package firewall

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/nftables"
)

// Apply makes berth's tables in the current netns exactly the ruleset of s: in one netlink
// batch (one transaction: no moment without rules, nothing half-done on error) it deletes
// each berth table that exists and adds those s needs. Then it sets route_localnet on the
// bridges with published IPv4 ports; a bridge that does not exist yet is skipped (call
// Apply again once it does). Applying the same State twice gives the same ruleset.
func Apply(s State) error {
	rs, err := Ruleset(s)
	if err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	return rs.Apply()
}

// Apply installs rs as Apply(State) does.
func (rs *Rules) Apply() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("apply firewall: nftables: %w", err)
	}
	deleteTables(c)
	for _, t := range rs.tables {
		t.install(c)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply firewall: %w", err)
	}
	for _, br := range rs.routeLocalnet {
		err := writeSysctl(filepath.Join("/proc/sys/net/ipv4/conf", br, "route_localnet"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("apply firewall: %w", err)
		}
	}
	return nil
}

// Remove deletes berth's tables from the current netns; absent tables are fine. The daemon
// does not call it on shutdown (published ports and NAT outlive the daemon, as Docker's
// do); it is for tests and uninstalling. route_localnet settings are left as they are.
func Remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("remove firewall: nftables: %w", err)
	}
	deleteTables(c)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove firewall: %w", err)
	}
	return nil
}

// deleteTables queues the deletion of every berth table. Each is first added (a no-op if
// it exists), so that deleting a missing table cannot fail the batch (moby #45646).
func deleteTables(c *nftables.Conn) {
	for _, f := range families {
		t := &nftables.Table{Name: TableName, Family: f}
		c.AddTable(t)
		c.DelTable(t)
	}
}

// install queues t, its chains and their rules.
func (t *table) install(c *nftables.Conn) {
	nt := c.AddTable(&nftables.Table{Name: TableName, Family: t.family})
	accept := nftables.ChainPolicyAccept
	for _, ch := range t.chains {
		nc := c.AddChain(&nftables.Chain{Name: ch.name, Table: nt, Type: ch.typ,
			Hooknum: ch.hook, Priority: ch.priority, Policy: &accept})
		for _, r := range ch.rules {
			c.AddRule(&nftables.Rule{Table: nt, Chain: nc, Exprs: r.exprs})
		}
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
