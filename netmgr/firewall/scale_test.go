package firewall

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/internal/testns"

	"github.com/google/nftables"
)

// scaleState has n networks with explicit subnets (every third with ICC off, every tenth
// internal, every fifth dual-stack) and ports published ports spread over them.
func scaleState(n, ports int) State {
	var s State
	for i := range n {
		nw := Network{Bridge: fmt.Sprintf("br-%d", i), ICC: i%3 != 0, Internal: i%10 == 9, Masquerade: true,
			Subnets: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i / 250), byte(i % 250), 0}), 24)}}
		if i%5 == 0 {
			nw.Subnets = append(nw.Subnets, pfx(fmt.Sprintf("fd00:%x::/64", i+1)))
		}
		s.Networks = append(s.Networks, nw)
	}
	for p := range ports {
		i := p % n
		if i%10 == 9 {
			i-- // not on an internal network
		}
		s.Ports = append(s.Ports, Port{Proto: "tcp", HostPort: uint16(10000 + p), Port: 80, Bridge: fmt.Sprintf("br-%d", i),
			Addr: netip.AddrFrom4([4]byte{10, byte(i / 250), byte(i % 250), byte(2 + p/n)})})
	}
	return s
}

// TestScaleLinear checks that the ruleset grows by set elements only, linearly in the
// networks and ports: the rules stay as many as for one network (isolation by a rule per
// pair of networks would take N*(N-1) rules per family).
func TestScaleLinear(t *testing.T) {
	type size struct{ rules, elems int }
	measure := func(n, ports int) size {
		r, e := mustRuleset(t, scaleState(n, ports)).Size()
		return size{r, e}
	}
	small, mid, big := measure(10, 50), measure(100, 500), measure(1000, 5000)
	t.Logf("10/50: %+v, 100/500: %+v, 1000/5000: %+v", small, mid, big)
	if small.rules != big.rules || mid.rules != big.rules {
		t.Errorf("rules: %d, %d, %d for 10, 100, 1000 networks; want the same count", small.rules, mid.rules, big.rules)
	}
	// From 100 to 1,000 networks the state grows by ten times what it grew by from 10 to
	// 100 (900 networks of the same kinds against 90), and so must the elements.
	if big.elems-mid.elems != 10*(mid.elems-small.elems) {
		t.Errorf("elements: %d, %d, %d for 10, 100, 1000 networks; want linear growth", small.elems, mid.elems, big.elems)
	}
	one := measure(1, 0)
	if one.rules != big.rules {
		t.Errorf("rules for one network: %d; want %d", one.rules, big.rules)
	}
}

// TestUpdateProportional checks that a change is sent as what changed: one more network,
// or one more port, costs the same messages and elements next to 10 networks as next to
// 1,000, and a full rebuild of 1,000 networks and 5,000 ports fits a bounded batch.
func TestUpdateProportional(t *testing.T) {
	queued := func(queue func(*batch)) *batch {
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		b := &batch{c: c}
		queue(b)
		if b.err != nil {
			t.Fatal(b.err)
		}
		return b
	}
	step := func(n, ports int, change func(*State)) *batch {
		s := scaleState(n, ports)
		l := newLive(mustIndex(t, s))
		change(&s)
		cs := l.update(mustIndex(t, s))
		if l.broken {
			t.Fatal("counts out of step")
		}
		return queued(func(b *batch) { queueChanges(b, cs) })
	}
	addNetwork := func(s *State) {
		s.Networks = append(s.Networks, Network{Bridge: "br-new", ICC: true, Masquerade: true,
			Subnets: []netip.Prefix{pfx("10.200.0.0/24")}})
	}
	addPort := func(s *State) {
		s.Ports = append(s.Ports, Port{Proto: "udp", HostPort: 9999, Port: 53, Bridge: "br-1", Addr: addr("10.0.1.200")})
	}
	removeNetwork := func(s *State) { s.Networks = s.Networks[:len(s.Networks)-1] } // br-N-1: no ports (internal)
	for name, change := range map[string]func(*State){"add network": addNetwork, "add port": addPort, "remove network": removeNetwork} {
		small, big := step(10, 50, change), step(1000, 5000, change)
		if small.msgs != big.msgs || small.elems != big.elems || big.rules != 0 {
			t.Errorf("%s: next to 10 networks %d messages, %d elements, %d rules; next to 1,000: %d, %d, %d; want the same, no rules",
				name, small.msgs, small.elems, small.rules, big.msgs, big.elems, big.rules)
		}
		if big.msgs > 12 {
			t.Errorf("%s: %d messages; want one per set changed", name, big.msgs)
		}
	}
	full := mustRuleset(t, scaleState(1000, 5000))
	b := queued(full.rebuild)
	t.Logf("rebuild of 1,000 networks and 5,000 ports: %d messages, %d rules, %d elements", b.msgs, b.rules, b.elems)
	if b.msgs > 200 || b.rules > 60 {
		t.Errorf("rebuild: %d messages, %d rules; want at most 200 and 60", b.msgs, b.rules)
	}
}

func mustIndex(t testing.TB, s State) inputs {
	t.Helper()
	in, err := index(s)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestUpdateMatchesRuleset walks random sequences of states (networks added, removed
// and changed, ports and links coming and going) and checks after each step that the
// elements the updates leave are exactly those Ruleset renders for the state.
func TestUpdateMatchesRuleset(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	walked := 0
	for seq := range 30 {
		var byIndex, byWalk *live // update from the whole inputs; updateRaw where it can
		for step := range 40 {
			s := randomState(r)
			if r.IntN(4) == 0 { // now and then a port listed twice
				if n := len(s.Ports); n > 0 {
					s.Ports = append(s.Ports, s.Ports[r.IntN(n)])
				}
			}
			in := mustIndex(t, s)
			if byIndex == nil || byIndex.shape != in.shape() {
				byIndex, byWalk = newLive(in), newLive(in)
				byWalk.raw = copyState(s)
			} else {
				byIndex.update(in)
				if _, ok := byWalk.updateRaw(s); ok {
					walked++
				} else {
					byWalk.update(in)
					byWalk.raw = copyState(s)
				}
			}
			want := rulesetElements(mustRuleset(t, s))
			for name, l := range map[string]*live{"update": byIndex, "updateRaw": byWalk} {
				if l.broken {
					t.Fatalf("sequence %d step %d, %s: counts out of step", seq, step, name)
				}
				if got := liveElements(l); got != want {
					t.Fatalf("sequence %d step %d, %s: elements:\n%s\nwant (Ruleset):\n%s", seq, step, name, got, want)
				}
			}
		}
	}
	if walked < 300 {
		t.Errorf("updateRaw took %d of 1,170 steps; want most", walked)
	}
}

// randomState draws from a small universe, so that consecutive states share most inputs.
func randomState(r *rand.Rand) State {
	var s State
	for i := range 6 {
		if r.IntN(4) == 0 {
			continue
		}
		nw := Network{Bridge: fmt.Sprintf("br-%d", i), ICC: r.IntN(3) != 0, Internal: r.IntN(6) == 0, Masquerade: r.IntN(5) != 0,
			Subnets: []netip.Prefix{pfx(fmt.Sprintf("10.1.%d.0/24", i))}}
		if r.IntN(2) == 0 {
			nw.Subnets = append(nw.Subnets, pfx(fmt.Sprintf("fd00:%d::/64", i)))
		}
		if r.IntN(8) == 0 {
			nw.HostBindingIPv4 = addr("192.0.2.1")
		}
		s.Networks = append(s.Networks, nw)
	}
	for _, nw := range s.Networks {
		var i int
		fmt.Sscanf(nw.Bridge, "br-%d", &i)
		for h := range 3 {
			if r.IntN(2) == 0 {
				continue
			}
			proto := []string{"tcp", "udp"}[r.IntN(2)]
			a4 := addr(fmt.Sprintf("10.1.%d.%d", i, 2+h))
			s.Ports = append(s.Ports, Port{Proto: proto, HostPort: uint16(8000 + i*10 + h), Addr: a4, Port: 80, Bridge: nw.Bridge})
			if len(nw.Subnets) > 1 {
				s.Ports = append(s.Ports, Port{Proto: proto, HostPort: uint16(8000 + i*10 + h), Addr: addr(fmt.Sprintf("fd00:%d::%d", i, 2+h)), Port: 80, Bridge: nw.Bridge})
			}
			if r.IntN(3) == 0 {
				s.Links = append(s.Links, Link{Bridge: nw.Bridge, From: a4, To: addr(fmt.Sprintf("10.1.%d.9", i)), Proto: proto, Port: 5432})
			}
		}
	}
	return s
}

func liveElements(l *live) string {
	var lines []string
	for ref, ls := range l.sets {
		for _, le := range ls.elems {
			if le.refs > 0 {
				lines = append(lines, fmt.Sprintf("%s %s %s", familyNames[ref.family], ref.name, ls.def.elemString(le.e)))
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func rulesetElements(rs *Rules) string {
	var lines []string
	for _, t := range rs.tables {
		for _, s := range t.sets {
			for _, e := range s.elems {
				lines = append(lines, fmt.Sprintf("%s %s %s", familyNames[t.family], s.name, s.elemString(e)))
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// BenchmarkStep is the userland cost of one Apply that adds or removes one network next
// to 1,000 networks and 5,000 ports: the states walked side by side, the changed inputs'
// elements counted and queued.
func BenchmarkStep(b *testing.B) {
	small := scaleState(1000, 5000)
	big := small
	big.Networks = append(slices.Clone(small.Networks), Network{Bridge: "br-new", ICC: true, Masquerade: true,
		Subnets: []netip.Prefix{pfx("10.200.0.0/24")}})
	l := newLive(mustIndex(b, small))
	l.raw = copyState(small)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		next := big
		if i%2 == 1 {
			next = small
		}
		cs, ok := l.updateRaw(next)
		if !ok {
			b.Fatal("updateRaw gave up")
		}
		c, _ := nftables.New()
		queueChanges(&batch{c: c}, cs)
	}
	if l.broken {
		b.Fatal("counts out of step")
	}
}

// TestRebuildAtScale installs 1,000 networks and 5,000 ports in the kernel (the test's
// private netns) in one batch, then changes one network and one port: the batch fits the
// sized socket (the default buffers are far too small for it: ENOBUFS, see batch.go), and
// the kernel holds what Ruleset renders.
func TestRebuildAtScale(t *testing.T) {
	testns.Require(t)
	t.Cleanup(func() { Remove() })
	var f Firewall
	s := scaleState(1000, 5000)
	t0 := time.Now()
	if err := f.Apply(s); err != nil {
		t.Fatal(err)
	}
	t.Logf("rebuild with 1,000 networks and 5,000 ports: %v", time.Since(t0))
	s.Networks = append(s.Networks, Network{Bridge: "br-new", ICC: true, Masquerade: true, Subnets: []netip.Prefix{pfx("10.200.0.0/24")}})
	s.Ports = append(s.Ports, Port{Proto: "udp", HostPort: 9999, Port: 53, Bridge: "br-new", Addr: addr("10.200.0.2")})
	t0 = time.Now()
	if err := f.Apply(s); err != nil {
		t.Fatal(err)
	}
	t.Logf("then one network and one port more: %v", time.Since(t0))
	if f.live == nil || f.live.broken {
		t.Fatal("the change was not applied as an update")
	}
	out, err := exec.Command("nft", "list", "table", "ip", TableName).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	for _, want := range []string{`"br-new" . 10.200.0.0/24`, "udp . 9999 : 10.200.0.2 . 53", `"br-999" . "br-999"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("table ip berth lacks %q", want)
		}
	}
}
