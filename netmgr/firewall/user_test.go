package firewall_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"berth/netmgr/firewall"
)

// userDrop is the README's example with the rig's a1 as the source.
var userDrop = []string{"add", "rule", "inet", "berth", "user", "ip", "saddr", "10.88.1.2", "drop"}

// TestUserChain: the rules an admin adds to chain inet berth user decide first (a drop
// blocks a sandbox's forwarded traffic) and survive everything berth does to its own
// tables: incremental applies, rebuilds after a repair, a restart, the last network going,
// and a check, which must not take them for drift.
func TestUserChain(t *testing.T) {
	r := newRig(t)
	t.Cleanup(func() {
		firewall.Remove()
		exec.Command("nft", "delete", "table", "inet", "berth").Run()
	})
	if err := firewall.EnableForwarding(false); err != nil {
		t.Fatal(err)
	}
	base := baseState()
	f := &firewall.Firewall{}
	apply := func(f *firewall.Firewall, s firewall.State) {
		t.Helper()
		if err := f.Apply(s); err != nil {
			t.Fatal(err)
		}
	}
	apply(f, base)
	if got := userRules(t); len(got) != 0 {
		t.Fatalf("chain user after the first Apply: %q; want it empty", got)
	}
	r.reach(t, "a1", "tcp", "192.0.2.2:7000", "out 192.0.2.1")

	nft(t, userDrop...)
	// A second rule of another shape: the check counts none of them.
	nft(t, "add", "rule", "inet", "berth", "user", "ip", "daddr", "203.0.113.9", "counter", "reject")
	want := []string{"ip saddr 10.88.1.2 drop", "ip daddr 203.0.113.9 counter packets 0 bytes 0 reject with icmp port-unreachable"}
	blocked := func(when string) {
		t.Helper()
		if got := userRules(t); !slices.Equal(got, want) {
			t.Errorf("%s: chain user holds %q; want %q", when, got, want)
		}
		r.block(t, "a1", "tcp", "192.0.2.2:7000")                  // the dropped source
		r.reach(t, "a2", "tcp", "192.0.2.2:7000", "out 192.0.2.1") // its neighbour is not
	}
	blocked("after nft add rule")
	if gone, err := f.Missing(); err != nil || gone != nil {
		t.Errorf("Missing with user rules: %q, %v; want nothing", gone, err)
	}

	t.Run("incremental apply", func(t *testing.T) {
		s := baseState()
		s.Ports = s.Ports[:1]
		apply(f, s)
		apply(f, base)
		blocked("after incremental applies")
	})
	t.Run("repair", func(t *testing.T) {
		nft(t, "delete", "table", "ip", "berth")
		gone, err := f.Missing()
		if err != nil || !slices.Contains(gone, "table ip berth") {
			t.Fatalf("Missing after deleting table ip berth: %q, %v", gone, err)
		}
		f.Forget()
		apply(f, base)
		blocked("after a repair")
	})
	t.Run("forward chain flushed", func(t *testing.T) {
		nft(t, "flush", "chain", "inet", "berth", "forward")
		r.reach(t, "a1", "tcp", "192.0.2.2:7000", "out 192.0.2.1") // the jump is gone
		gone, err := f.Missing()
		if w := "rules of chain inet berth forward: 0, want 1"; err != nil || !slices.Contains(gone, w) {
			t.Fatalf("Missing: %q, %v; want %q", gone, err, w)
		}
		f.Forget()
		apply(f, base)
		blocked("after the jump was put back")
	})
	t.Run("restart", func(t *testing.T) {
		f = &firewall.Firewall{} // a new daemon: its first Apply rebuilds
		apply(f, base)
		blocked("after a restart")
	})
	t.Run("no networks", func(t *testing.T) {
		apply(f, firewall.State{})
		if got := nftTables(t); got != "" {
			t.Errorf("berth's tables without networks:\n%s", got)
		}
		apply(f, base)
		blocked("after the tables went and came back")
	})
	t.Run("remove keeps it", func(t *testing.T) {
		if err := firewall.Remove(); err != nil {
			t.Fatal(err)
		}
		if got := userRules(t); !slices.Equal(got, want) {
			t.Errorf("after Remove: chain user holds %q; want %q", got, want)
		}
	})
	t.Run("table deleted", func(t *testing.T) {
		nft(t, "delete", "table", "inet", "berth")
		gone, err := f.Missing()
		if err != nil || !slices.Contains(gone, "table inet berth") {
			t.Fatalf("Missing after deleting table inet berth: %q, %v", gone, err)
		}
		f.Forget()
		apply(f, base)
		if got := userRules(t); len(got) != 0 {
			t.Errorf("chain user made again: %q; want it empty", got)
		}
		r.reach(t, "a1", "tcp", "192.0.2.2:7000", "out 192.0.2.1")
	})
}

// TestUserChainListing: what `nft list table inet berth` shows after a rebuild, the
// README's description of the table.
func TestUserChainListing(t *testing.T) {
	newRig(t)
	t.Cleanup(func() {
		firewall.Remove()
		exec.Command("nft", "delete", "table", "inet", "berth").Run()
	})
	var f firewall.Firewall
	if err := f.Apply(baseState()); err != nil {
		t.Fatal(err)
	}
	want := `table inet berth {
	chain user {
	}

	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		jump user
	}
}
`
	if got := nftList(t, "inet", "berth"); got != want {
		t.Errorf("nft list table inet berth:\n%s\nwant:\n%s", got, want)
	}
}

func nft(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// userRules lists the rules of chain inet berth user, as nft prints them.
func userRules(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("nft", "list", "chain", "inet", "berth", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain inet berth user: %v: %s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == "}" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") {
			continue
		}
		rules = append(rules, l)
	}
	return rules
}
