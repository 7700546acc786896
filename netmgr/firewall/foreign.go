package firewall

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Other programs' forward chains. A drop in any base chain is final in nftables, so a
// forward chain whose policy is drop (Docker's iptables FORWARD, firewalld's
// filter_FORWARD, which ends in a reject) drops berth's forwarded traffic whatever berth's
// own tables accept; with br_netfilter on (Docker turns it on) that includes traffic
// between two sandboxes of one bridge. So, as libvirt and Podman do, berth adds an accept
// rule per direction for each of its bridges to such a chain:
//
//	ip/ip6 filter DOCKER-USER, when FORWARD jumps to it (Docker's place for user rules)
//	ip/ip6 filter FORWARD otherwise (iptables' own chain: -i BR -j ACCEPT, -o BR -j ACCEPT)
//	inet firewalld filter_FORWARD
//
// One rule per bridge name, never a wildcard: Docker's own bridges are br-* too, and its
// isolation between them must stay. Isolation between berth's networks stays with berth's
// tables, whose drops are final as well. The rules are encoded as iptables-nft encodes
// `-i BR -j ACCEPT` (meta iifname, cmp, counter, accept), so `iptables -S` still lists the
// chain, and carry the comment "berth" (rule user data; iptables shows
// `-m comment --comment berth`), which is how berth finds its own: no other rule is ever
// changed. ip6 chains get the bridges of networks with IPv6. Rules iptables keeps in its
// legacy (non-nftables) backend are out of reach and not looked at.

// ruleTag is the comment on berth's rules in other programs' chains.
const ruleTag = "berth"

// udataComment is libnftnl's NFTNL_UDATA_RULE_COMMENT, the user data type nft and
// iptables-nft keep a rule's comment in.
const udataComment = 0

// Chains berth looks for, by the programs that make them.
const (
	chainForward    = "FORWARD"        // iptables (ip/ip6 table filter)
	chainDockerUser = "DOCKER-USER"    // Docker, jumped to from FORWARD
	chainFirewalld  = "filter_FORWARD" // firewalld (inet table firewalld)
)

// forwardChain is a chain of another program that berth may open its bridges in.
type forwardChain struct {
	family nftables.TableFamily
	table  string
	chain  string
}

func (c forwardChain) String() string { return familyName(c.family) + " " + c.table + " " + c.chain }

func (c forwardChain) nft() (*nftables.Table, *nftables.Chain) {
	t := &nftables.Table{Name: c.table, Family: c.family}
	return t, &nftables.Chain{Name: c.chain, Table: t}
}

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyINet {
		return "inet"
	}
	return familyNames[f]
}

// opening is one accept rule berth wants in a forward chain: traffic in from (out=false)
// or out to (out=true) a bridge.
type opening struct {
	bridge string
	out    bool
}

func (o opening) String() string {
	if o.out {
		return "oifname " + o.bridge + " accept"
	}
	return "iifname " + o.bridge + " accept"
}

func compareOpenings(a, b opening) int {
	if c := cmp.Compare(a.bridge, b.bridge); c != 0 {
		return c
	}
	switch {
	case a.out == b.out:
		return 0
	case a.out:
		return 1
	}
	return -1
}

// openings are the rules berth wants in a chain of family f for the networks of s, sorted:
// IPv6 chains get only the networks with an IPv6 subnet; ip and inet chains get all
// (an inet chain sees both families; IPv4 is how a bridge reaches anything at all).
func openings(s State, f nftables.TableFamily) []opening {
	var out []opening
	for _, nw := range s.Networks {
		if f == nftables.TableFamilyIPv6 && !slices.ContainsFunc(nw.Subnets, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
			continue
		}
		out = append(out, opening{nw.Bridge, false}, opening{nw.Bridge, true})
	}
	slices.SortFunc(out, compareOpenings)
	return slices.Compact(out)
}

// acceptRule is o as iptables-nft encodes `-i BR -j ACCEPT` (or -o), with berth's tag.
func acceptRule(c forwardChain, o opening) *nftables.Rule {
	key := expr.MetaKeyIIFNAME
	if o.out {
		key = expr.MetaKeyOIFNAME
	}
	t, ch := c.nft()
	return &nftables.Rule{Table: t, Chain: ch, UserData: tagData(),
		Exprs: []expr.Any{
			&expr.Meta{Key: key, Register: 1},
			// The name and its NUL, as iptables compares a name without a '+' wildcard:
			// exactly this interface, not every name it begins.
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append([]byte(o.bridge), 0)},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}}
}

// tagData is the user data of berth's rules: the comment ruleTag, NUL-terminated, as
// libnftnl writes it.
func tagData() []byte {
	return append([]byte{udataComment, byte(len(ruleTag) + 1)}, append([]byte(ruleTag), 0)...)
}

// tagged reports whether user data carries berth's comment. It reads the TLVs itself:
// the data comes from other programs and may be anything.
func tagged(ud []byte) bool {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return false
		}
		if typ == udataComment {
			return string(bytes.TrimSuffix(ud[2:2+n], []byte{0})) == ruleTag
		}
		ud = ud[2+n:]
	}
	return false
}

// parseOpening reads back a rule made by acceptRule; ok is false for any other shape
// (a tagged rule berth did not make this way is stale and removed).
func parseOpening(r *nftables.Rule) (o opening, ok bool) {
	var ex []expr.Any
	for _, e := range r.Exprs {
		if _, isCounter := e.(*expr.Counter); !isCounter {
			ex = append(ex, e)
		}
	}
	if len(ex) != 3 {
		return opening{}, false
	}
	m, ok1 := ex[0].(*expr.Meta)
	c, ok2 := ex[1].(*expr.Cmp)
	v, ok3 := ex[2].(*expr.Verdict)
	if !ok1 || !ok2 || !ok3 || m.SourceRegister || c.Register != m.Register || c.Op != expr.CmpOpEq ||
		v.Kind != expr.VerdictAccept || len(c.Data) < 2 || c.Data[len(c.Data)-1] != 0 {
		return opening{}, false
	}
	switch m.Key {
	case expr.MetaKeyIIFNAME:
	case expr.MetaKeyOIFNAME:
		o.out = true
	default:
		return opening{}, false
	}
	o.bridge = string(bytes.TrimRight(c.Data, "\x00"))
	return o, o.bridge != "" && len(o.bridge) <= 15
}

// plan compares the rules of a chain with what berth wants there: the openings to add and
// berth's rules to delete (for bridges no longer wanted, duplicates, or of a shape berth
// does not make). Rules without berth's tag are never deleted.
func plan(have []*nftables.Rule, want []opening) (add []opening, del []*nftables.Rule) {
	wanted := make(map[opening]bool, len(want))
	for _, o := range want {
		wanted[o] = true
	}
	present := map[opening]bool{}
	for _, r := range have {
		if !tagged(r.UserData) {
			continue
		}
		o, ok := parseOpening(r)
		if !ok || !wanted[o] || present[o] {
			del = append(del, r)
			continue
		}
		present[o] = true
	}
	for _, o := range want {
		if !present[o] {
			add = append(add, o)
		}
	}
	return add, del
}

// target picks, among the chains of the netns, the chain of each program's table that
// berth opens its bridges in, and lists every chain berth's rules may be in (a target of
// an earlier check, say FORWARD before Docker made DOCKER-USER). rulesOf reads a chain's
// rules. A FORWARD that jumps to DOCKER-USER hands over to it; one that does not (after
// `iptables -F`, which leaves DOCKER-USER unreferenced) gets the rules itself.
func target(chains []*nftables.Chain, rulesOf func(forwardChain) ([]*nftables.Rule, error)) (targets, scan []forwardChain, err error) {
	has := map[forwardChain]*nftables.Chain{}
	for _, c := range chains {
		if c.Table != nil {
			has[forwardChain{c.Table.Family, c.Table.Name, c.Name}] = c
		}
	}
	isForward := func(c *nftables.Chain) bool {
		return c != nil && c.Hooknum != nil && *c.Hooknum == *nftables.ChainHookForward
	}
	for _, f := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		fwd := forwardChain{f, "filter", chainForward}
		user := forwardChain{f, "filter", chainDockerUser}
		_, hasUser := has[user]
		if hasUser {
			scan = append(scan, user)
		}
		if !isForward(has[fwd]) {
			continue // no iptables forward chain: DOCKER-USER alone is never reached
		}
		scan = append(scan, fwd)
		if hasUser {
			rules, err := rulesOf(fwd)
			if err != nil {
				return nil, nil, err
			}
			if jumpsTo(rules, chainDockerUser) {
				targets = append(targets, user)
				continue
			}
		}
		targets = append(targets, fwd)
	}
	if fw := (forwardChain{nftables.TableFamilyINet, "firewalld", chainFirewalld}); isForward(has[fw]) {
		targets, scan = append(targets, fw), append(scan, fw)
	}
	return targets, scan, nil
}

func jumpsTo(rules []*nftables.Rule, chain string) bool {
	for _, r := range rules {
		for _, e := range r.Exprs {
			if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump && v.Chain == chain {
				return true
			}
		}
	}
	return false
}

// Forward keeps berth's bridges open in other programs' forward chains (see above). The
// zero value is ready to use; it is safe for concurrent use.
type Forward struct {
	mu sync.Mutex
	// guards following
	want State // the state last given to Open
}

// stdForward is the Forward behind the package-level OpenForward and RecheckForward.
var stdForward Forward

// OpenForward makes berth's rules in other programs' forward chains those of s, with the
// package's Forward (see Forward.Open).
func OpenForward(s State) ([]string, error) { return stdForward.Open(s) }

// RecheckForward puts back what the last OpenForward installed, if it is gone (see
// Forward.Recheck).
func RecheckForward() ([]string, error) { return stdForward.Recheck() }

// Open makes berth's rules in other programs' forward chains in the current netns those
// of s: an accept per direction for each bridge of s, added where missing, and berth's
// rules for other bridges deleted, in one batch. It returns what it changed, one line per
// chain; a netns without such chains costs one listing. s is remembered for Recheck even
// if the change fails.
func (fw *Forward) Open(s State) ([]string, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.want = State{Networks: slices.Clone(s.Networks)}
	return fw.ensureLocked()
}

// Recheck does what Open did for the last state it was given: rules deleted since (by
// `iptables -F`, or a chain made anew by a restarted dockerd or firewalld) are added again.
// It returns what it changed; nothing when all is in place.
func (fw *Forward) Recheck() ([]string, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.ensureLocked()
}

func (fw *Forward) ensureLocked() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open forward chains: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("open forward chains: list chains: %w", err)
	}
	rulesOf := func(fc forwardChain) ([]*nftables.Rule, error) {
		t, ch := fc.nft()
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("open forward chains: list %s: %w", fc, err)
		}
		return rules, nil
	}
	targets, scan, err := target(chains, rulesOf)
	if err != nil {
		return nil, err
	}
	type change struct {
		chain forwardChain
		add   []opening
		del   []*nftables.Rule
	}
	var changes []change
	for _, fc := range scan {
		var want []opening
		if slices.Contains(targets, fc) {
			want = openings(fw.want, fc.family)
		}
		rules, err := rulesOf(fc)
		if err != nil {
			return nil, err
		}
		if add, del := plan(rules, want); len(add) > 0 || len(del) > 0 {
			changes = append(changes, change{fc, add, del})
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	var done []string
	err = send(func(b *batch) {
		for _, ch := range changes {
			for _, r := range ch.del {
				t, nc := ch.chain.nft()
				if err := b.c.DelRule(&nftables.Rule{Table: t, Chain: nc, Handle: r.Handle}); err != nil {
					b.fail(fmt.Errorf("delete rule in %s: %w", ch.chain, err))
				}
				b.msgs++
			}
			for _, o := range ch.add {
				b.c.InsertRule(acceptRule(ch.chain, o)) // at the top: before the chain's drops and returns
				b.rules++
			}
			done = append(done, describe(ch.chain, ch.add, len(ch.del)))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("open forward chains: %w", err)
	}
	return done, nil
}

// describe says what one chain's change does, naming up to a few of the rules added:
// "ip filter DOCKER-USER: 2 accept rules added (iifname br-x accept, oifname br-x accept)".
func describe(c forwardChain, add []opening, dels int) string {
	var parts []string
	if len(add) > 0 {
		var names []string
		for i, o := range add {
			if i == 4 {
				names = append(names, "...")
				break
			}
			names = append(names, o.String())
		}
		parts = append(parts, fmt.Sprintf("%d accept rules added (%s)", len(add), strings.Join(names, ", ")))
	}
	if dels > 0 {
		parts = append(parts, fmt.Sprintf("%d of berth's rules removed", dels))
	}
	return c.String() + ": " + strings.Join(parts, ", ")
}
