package firewall

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"berth/internal/testns"
)

func TestOpeningsFamilies(t *testing.T) {
	s := State{Networks: []Network{
		{Bridge: "br-b", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd00::/64")}},
		{Bridge: "br-a", Subnets: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}},
	}}
	for _, tc := range []struct {
		family nftables.TableFamily
		want   string
	}{
		{nftables.TableFamilyIPv4, "iifname br-a accept,oifname br-a accept,iifname br-b accept,oifname br-b accept"},
		{nftables.TableFamilyINet, "iifname br-a accept,oifname br-a accept,iifname br-b accept,oifname br-b accept"},
		{nftables.TableFamilyIPv6, "iifname br-b accept,oifname br-b accept"},
	} {
		var got []string
		for _, o := range openings(s, tc.family) {
			got = append(got, o.String())
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("family %d: got %v; want %s", tc.family, got, tc.want)
		}
	}
}

func TestAcceptRuleEncoding(t *testing.T) {
	c := forwardChain{nftables.TableFamilyIPv4, "filter", chainDockerUser}
	r := acceptRule(c, opening{"br-0123456789ab", true})
	// As iptables-nft encodes -o br-0123456789ab -j ACCEPT: the name with its NUL.
	cmpx := r.Exprs[1].(*expr.Cmp)
	if got, want := string(cmpx.Data), "br-0123456789ab\x00"; got != want {
		t.Errorf("cmp data %q; want %q", got, want)
	}
	if m := r.Exprs[0].(*expr.Meta); m.Key != expr.MetaKeyOIFNAME || m.Register != 1 {
		t.Errorf("meta %+v; want oifname into register 1", m)
	}
	if !tagged(r.UserData) {
		t.Errorf("user data %q not tagged", r.UserData)
	}
	if o, ok := parseOpening(r); !ok || o != (opening{"br-0123456789ab", true}) {
		t.Errorf("parse back: %v %v", o, ok)
	}
}

func TestTagged(t *testing.T) {
	for _, tc := range []struct {
		name string
		ud   []byte
		want bool
	}{
		{"ours", tagData(), true},
		{"nil", nil, false},
		{"other comment", []byte{0, 6, 'd', 'o', 'c', 'k', 'r', 0}, false},
		{"after another TLV", append([]byte{1, 2, 9, 9}, tagData()...), true},
		{"truncated", []byte{0, 40, 'b'}, false},
		{"prefix only", []byte{0, 4, 'b', 'e', 'r', 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tagged(tc.ud); got != tc.want {
				t.Errorf("tagged(%q) = %v; want %v", tc.ud, got, tc.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	c := forwardChain{nftables.TableFamilyIPv4, "filter", chainForward}
	ours := func(h uint64, o opening) *nftables.Rule {
		r := acceptRule(c, o)
		r.Handle = h
		return r
	}
	foreign := acceptRule(c, opening{"br-docker", false}) // same shape, no tag: Docker's, say
	foreign.UserData, foreign.Handle = nil, 1
	odd := &nftables.Rule{Handle: 2, UserData: tagData(), Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}}
	a, ao := opening{"br-a", false}, opening{"br-a", true}
	b, bo := opening{"br-b", false}, opening{"br-b", true}
	for _, tc := range []struct {
		name    string
		have    []*nftables.Rule
		want    []opening
		add     []opening
		delete_ []uint64
	}{
		{"empty chain", nil, []opening{a, ao}, []opening{a, ao}, nil},
		{"all there", []*nftables.Rule{foreign, ours(3, a), ours(4, ao)}, []opening{a, ao}, nil, nil},
		{"one missing", []*nftables.Rule{ours(3, a)}, []opening{a, ao}, []opening{ao}, nil},
		{"stale bridge", []*nftables.Rule{ours(3, a), ours(4, ao), ours(5, b), ours(6, bo)}, []opening{a, ao}, nil, []uint64{5, 6}},
		{"duplicate", []*nftables.Rule{ours(3, a), ours(4, a), ours(5, ao)}, []opening{a, ao}, nil, []uint64{4}},
		{"odd shape with our tag", []*nftables.Rule{odd}, nil, nil, []uint64{2}},
		{"not a target: all ours go, others stay", []*nftables.Rule{foreign, ours(3, a)}, nil, nil, []uint64{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			add, del := plan(tc.have, tc.want)
			var dels []uint64
			for _, r := range del {
				dels = append(dels, r.Handle)
			}
			if !slices.Equal(add, tc.add) || !slices.Equal(dels, tc.delete_) {
				t.Errorf("plan: add %v, delete %v; want add %v, delete %v", add, dels, tc.add, tc.delete_)
			}
		})
	}
}

func TestTarget(t *testing.T) {
	v4 := &nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4}
	fw := &nftables.Table{Name: "firewalld", Family: nftables.TableFamilyINet}
	base := func(t *nftables.Table, name string) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Hooknum: nftables.ChainHookForward}
	}
	jump := []*nftables.Rule{{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainDockerUser}}}}
	for _, tc := range []struct {
		name         string
		chains       []*nftables.Chain
		fwdRules     []*nftables.Rule
		targets, all string
	}{
		{"nothing", nil, nil, "", ""},
		{"iptables only", []*nftables.Chain{base(v4, chainForward)}, nil, "ip filter FORWARD", "ip filter FORWARD"},
		{"docker", []*nftables.Chain{base(v4, chainForward), {Name: chainDockerUser, Table: v4}}, jump,
			"ip filter DOCKER-USER", "ip filter DOCKER-USER,ip filter FORWARD"},
		{"docker after iptables -F", []*nftables.Chain{base(v4, chainForward), {Name: chainDockerUser, Table: v4}}, nil,
			"ip filter FORWARD", "ip filter DOCKER-USER,ip filter FORWARD"},
		{"FORWARD not a base chain", []*nftables.Chain{{Name: chainForward, Table: v4}}, nil, "", ""},
		{"firewalld", []*nftables.Chain{base(fw, chainFirewalld)}, nil, "inet firewalld filter_FORWARD", "inet firewalld filter_FORWARD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets, scan, err := target(tc.chains, func(forwardChain) ([]*nftables.Rule, error) { return tc.fwdRules, nil })
			if err != nil {
				t.Fatal(err)
			}
			join := func(cs []forwardChain) string {
				var s []string
				for _, c := range cs {
					s = append(s, c.String())
				}
				return strings.Join(s, ",")
			}
			if join(targets) != tc.targets || join(scan) != tc.all {
				t.Errorf("targets %q, scan %q; want %q, %q", join(targets), join(scan), tc.targets, tc.all)
			}
		})
	}
}

// TestForwardIptables: berth's rules in iptables' chains, as iptables-nft and Docker's
// ruleset meet them (real kernel, real iptables): listed and matched by iptables -S and -C,
// moved from DOCKER-USER to FORWARD when an `iptables -F` cuts the jump, removed with the
// network, and nothing else touched.
func TestForwardIptables(t *testing.T) {
	testns.Require(t)
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v (.ci/run installs iptables)", tool, err)
			}
			t.Skipf("%s: %v", tool, err)
		}
	}
	ipt := func(tool string, args ...string) string {
		t.Helper()
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v: %s", tool, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		for _, fam := range []string{"ip", "ip6"} {
			exec.Command("nft", "delete", "table", fam, "filter").Run()
		}
	})
	// Docker's shape: FORWARD policy DROP, jump DOCKER-USER first, its own bridge accepted.
	for _, tool := range []string{"iptables", "ip6tables"} {
		ipt(tool, "-P", "FORWARD", "DROP")
		ipt(tool, "-N", "DOCKER-USER")
		ipt(tool, "-A", "DOCKER-USER", "-j", "RETURN")
		ipt(tool, "-A", "FORWARD", "-j", "DOCKER-USER")
		ipt(tool, "-A", "FORWARD", "-i", "br-docker", "-j", "ACCEPT")
	}
	s := State{Networks: []Network{
		{Bridge: "br-a", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}},
		{Bridge: "br-b", Subnets: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("fd00:2::/64")}},
	}}
	var fw Forward
	changed, err := fw.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 2 {
		t.Errorf("Open changed %q; want the ip and ip6 DOCKER-USER chains", changed)
	}
	user := ipt("iptables", "-S", "DOCKER-USER")
	for _, want := range []string{
		"-A DOCKER-USER -i br-a -m comment --comment berth -j ACCEPT",
		"-A DOCKER-USER -o br-b -m comment --comment berth -j ACCEPT",
		"-A DOCKER-USER -j RETURN",
	} {
		if !strings.Contains(user, want) {
			t.Errorf("iptables -S DOCKER-USER:\n%s\nwant %q", user, want)
		}
	}
	// -C builds the rule the iptables way and compares it with what is there.
	ipt("iptables", "-C", "DOCKER-USER", "-i", "br-a", "-m", "comment", "--comment", "berth", "-j", "ACCEPT")
	ipt("ip6tables", "-C", "DOCKER-USER", "-o", "br-b", "-m", "comment", "--comment", "berth", "-j", "ACCEPT")
	if v6 := ipt("ip6tables", "-S", "DOCKER-USER"); strings.Contains(v6, "br-a") {
		t.Errorf("ip6 DOCKER-USER has the IPv4-only br-a:\n%s", v6)
	}
	if again, err := fw.Recheck(); err != nil || len(again) != 0 {
		t.Errorf("Recheck with everything in place: %q, %v; want no change", again, err)
	}
	// iptables -F FORWARD: the jump is gone, so the rules go to FORWARD itself.
	ipt("iptables", "-F", "FORWARD")
	if changed, err := fw.Recheck(); err != nil || len(changed) != 2 {
		t.Errorf("Recheck after iptables -F FORWARD: %q, %v; want DOCKER-USER emptied and FORWARD filled", changed, err)
	}
	fwd := ipt("iptables", "-S", "FORWARD")
	if !strings.Contains(fwd, "-A FORWARD -i br-b -m comment --comment berth -j ACCEPT") {
		t.Errorf("iptables -S FORWARD:\n%s\nwant berth's rules", fwd)
	}
	if user := ipt("iptables", "-S", "DOCKER-USER"); strings.Contains(user, "berth") {
		t.Errorf("berth's rules left in unreferenced DOCKER-USER:\n%s", user)
	}
	// A network goes: its rules go, and nobody else's.
	if _, err := fw.Open(State{Networks: s.Networks[:1]}); err != nil {
		t.Fatal(err)
	}
	if v6 := ipt("ip6tables", "-S"); strings.Contains(v6, "berth") || !strings.Contains(v6, "-A FORWARD -i br-docker -j ACCEPT") {
		t.Errorf("ip6tables -S after br-b went:\n%s\nwant no berth rule, Docker's kept", v6)
	}
	if fwd := ipt("iptables", "-S", "FORWARD"); strings.Contains(fwd, "br-b") || !strings.Contains(fwd, "br-a") {
		t.Errorf("iptables -S FORWARD after br-b went:\n%s", fwd)
	}
	if _, err := fw.Open(State{}); err != nil {
		t.Fatal(err)
	}
	if all := ipt("iptables", "-S"); strings.Contains(all, "berth") {
		t.Errorf("iptables -S with no networks:\n%s", all)
	}
}

// TestForwardFirewalld: firewalld's forward chain (its shape, made with nft, as firewalld
// is not installed here) gets berth's rules at its top, before its final reject.
func TestForwardFirewalld(t *testing.T) {
	testns.Require(t)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", "firewalld").Run() })
	ruleset := `table inet firewalld {
	chain filter_FORWARD {
		type filter hook forward priority filter + 10; policy accept;
		ct state established,related accept
		reject with icmpx admin-prohibited
	}
}`
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	var fw Forward
	if _, err := fw.Open(State{Networks: []Network{{Bridge: "br-a", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}}}}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nft", "list", "chain", "inet", "firewalld", "filter_FORWARD").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain: %v: %s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	var rules []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); strings.HasSuffix(l, "accept") || strings.Contains(l, "comment") || strings.HasPrefix(l, "reject") {
			rules = append(rules, l)
		}
	}
	want := []string{`iifname "br-a" counter packets 0 bytes 0 accept comment "berth"`,
		`oifname "br-a" counter packets 0 bytes 0 accept comment "berth"`}
	if len(rules) < 2 || !slices.Contains(rules[:2], want[0]) || !slices.Contains(rules[:2], want[1]) {
		t.Errorf("nft list chain inet firewalld filter_FORWARD:\n%s\nwant first %q", out, want)
	}
	if _, err := fw.Open(State{}); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("nft", "list", "chain", "inet", "firewalld", "filter_FORWARD").CombinedOutput(); strings.Contains(string(out), "berth") ||
		!strings.Contains(string(out), "reject") {
		t.Errorf("after the network went:\n%s", out)
	}
}
