package firewall

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"berth/internal/testns"
)

// TestMissing: what an admin's nft takes away from berth's tables is reported, one line
// each, and an Apply after Forget puts it back.
func TestMissing(t *testing.T) {
	testns.Require(t)
	t.Cleanup(func() { Remove() })
	var f Firewall
	if gone, err := f.Missing(); err != nil || gone != nil {
		t.Fatalf("Missing before any Apply: %q, %v; want nothing", gone, err)
	}
	s := State{Networks: []Network{{Bridge: "br-chk", Masquerade: true, ICC: false,
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24")}}}}
	for _, tc := range []struct {
		name string
		nft  []string
		want []string // lines of Missing that must be there
	}{
		{"nothing changed", nil, nil},
		{"table deleted", []string{"delete", "table", "ip", "berth"}, []string{"table ip berth"}},
		{"rules flushed", []string{"flush", "table", "ip6", "berth"}, []string{"rules of chain ip6 berth forward: 0, want "}},
		{"chain deleted", []string{"delete", "chain", "bridge", "berth", "forward"}, []string{"chain bridge berth forward"}},
		{"set deleted", []string{"delete", "set", "ip", "berth", "hairpin"}, []string{"set ip berth hairpin", "rules of chain ip berth forward"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.Forget()
			if err := f.Apply(s); err != nil {
				t.Fatal(err)
			}
			if gone, err := f.Missing(); err != nil || gone != nil {
				t.Fatalf("Missing right after Apply: %q, %v", gone, err)
			}
			if tc.nft != nil {
				// A chain with rules, or a set a rule looks up, cannot be deleted: flush first.
				if tc.nft[0] == "delete" && tc.nft[1] == "chain" {
					exec.Command("nft", "flush", "chain", "bridge", "berth", "forward").Run()
				}
				if tc.nft[0] == "delete" && tc.nft[1] == "set" {
					exec.Command("nft", "flush", "table", "ip", "berth").Run()
				}
				if out, err := exec.Command("nft", tc.nft...).CombinedOutput(); err != nil {
					t.Fatalf("nft %s: %v: %s", strings.Join(tc.nft, " "), err, out)
				}
			}
			gone, err := f.Missing()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(gone, func(g string) bool { return strings.HasPrefix(g, w) }) {
					t.Errorf("Missing: %q; want a line %q", gone, w)
				}
			}
			if tc.want == nil && gone != nil {
				t.Errorf("Missing: %q; want nothing", gone)
			}
		})
	}
	// After Forget the next Apply rebuilds whatever is gone.
	exec.Command("nft", "delete", "table", "ip", "berth").Run()
	f.Forget()
	if err := f.Apply(s); err != nil {
		t.Fatal(err)
	}
	if gone, err := f.Missing(); err != nil || gone != nil {
		t.Errorf("Missing after Forget and Apply: %q, %v; want nothing", gone, err)
	}
}
