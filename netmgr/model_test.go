package netmgr

// TestModel is the model-based test of issue 5 ("Tooling"): random sequences of create
// network, create sandbox, connect, disconnect, rm sandbox, rm network, rename and restart
// run against the Manager (fake kernel, real bbolt store) and against a reference model made
// of maps. After every step the outcome must agree with the model wherever the model can
// predict it, and the store, the fake kernel, the generated files and the resolver must all
// describe the same world: addresses unique and inside their subnets, the store's address
// table equal to the endpoints' addresses, veths/bridges/netns equal to the records, and
// names visible only to sandboxes that share a network.
//
// Replay one failing sequence with: go test ./netmgr/ -run TestModel -model.seed=N -v
// Run longer with: go test ./netmgr/ -run TestModel -model.seeds=200 -model.steps=400

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/api"
	"berth/resolver"
	"berth/store"
)

var (
	modelSeed = flag.Int64("model.seed", -1, "TestModel: run only this seed")
	// 20 seeds × 200 steps keep `go test -race ./...` quick; `make fuzz` runs more.
	modelSeeds = flag.Int("model.seeds", 20, "TestModel: number of seeds (5 with -short)")
	modelSteps = flag.Int("model.steps", 200, "TestModel: steps per seed")
)

func TestModel(t *testing.T) {
	seeds := []int64{}
	switch {
	case *modelSeed >= 0:
		seeds = append(seeds, *modelSeed)
	default:
		n := *modelSeeds
		if testing.Short() && n > 5 {
			n = 5
		}
		for i := range n {
			seeds = append(seeds, int64(i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			w := newModelWorld(t, seed)
			for step := 0; step < *modelSteps; step++ {
				w.step = step
				w.randomOp()
				w.check()
				if t.Failed() {
					t.Fatalf("seed %d failed at step %d; replay: go test ./netmgr/ -run TestModel -model.seed=%d -v\nlast ops:\n%s",
						seed, step, seed, strings.Join(w.history[max(0, len(w.history)-15):], "\n"))
				}
			}
			t.Logf("seed %d: %d steps, %d ops succeeded, %d refused as predicted, %d kernel faults undone",
				seed, *modelSteps, w.succeeded, w.refused, w.faults)
		})
	}
}

// Reference model.

type mSubnet struct {
	sub, rng netip.Prefix // rng: dynamic addresses come from here (the subnet when none)
	gw       netip.Addr
}

type mNet struct {
	name, id   string
	bridge     string // "" for none/host
	predefined bool
	v4, v6     *mSubnet // v6 nil without IPv6
}

type mEp struct {
	ip4, ip6 netip.Addr
}

type mSb struct {
	name, id  string
	mode      string
	container string          // ModeContainer: ID of the shared sandbox
	eps       map[string]*mEp // by network ID
}

type modelWorld struct {
	t    *testing.T
	r    *rand.Rand
	step int

	path, dir string
	k         *fakeKernel
	st        *store.Store
	m         *Manager

	nets map[string]*mNet // by lower-cased name
	sbs  map[string]*mSb  // by lower-cased name

	history            []string
	succeeded, refused int
	faults             int // kernel faults injected (and undone cleanly)

	faultBefore string // dump before an op that runs with a kernel fault armed
}

func newModelWorld(t *testing.T, seed int64) *modelWorld {
	w := &modelWorld{t: t, r: rand.New(rand.NewPCG(uint64(seed), 0x6265727468)), dir: t.TempDir(), k: newFakeKernel(),
		nets: map[string]*mNet{}, sbs: map[string]*mSb{}}
	w.path = filepath.Join(w.dir, "state.db")
	w.open()
	t.Cleanup(func() { w.st.Close() })
	// The predefined networks, as the first Restore made them.
	snap := w.st.Snapshot()
	for _, n := range snap.Networks() {
		w.nets[strings.ToLower(n.Name)] = modelNetFromRecord(n)
	}
	if len(w.nets) != 3 {
		t.Fatalf("after the first start: %d networks, want bridge, none and host", len(w.nets))
	}
	return w
}

func modelNetFromRecord(n *store.Network) *mNet {
	mn := &mNet{name: n.Name, id: n.ID, bridge: n.Bridge, predefined: n.Predefined}
	if n.Driver != store.DriverBridge {
		mn.bridge = ""
	}
	for _, s := range n.Subnets {
		ms := &mSubnet{sub: s.Subnet, rng: s.IPRange, gw: s.Gateway}
		if !ms.rng.IsValid() {
			ms.rng = s.Subnet
		}
		if s.Subnet.Addr().Is4() {
			mn.v4 = ms
		} else {
			mn.v6 = ms
		}
	}
	return mn
}

// open starts a "daemon": store from disk, a new Manager, Restore.
func (w *modelWorld) open() {
	st, err := store.Open(w.path)
	if err != nil {
		w.t.Fatalf("store.Open: %v", err)
	}
	w.st = st
	w.m = New(Config{Store: st, Kernel: w.k, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NetNSDir: filepath.Join(w.dir, "netns"), FilesDir: filepath.Join(w.dir, "etc"), RunDir: filepath.Join(w.dir, "state")})
	if err := w.m.Restore(w.t.Context()); err != nil {
		w.t.Fatalf("Restore: %v", err)
	}
}

func (w *modelWorld) logf(format string, args ...any) {
	w.history = append(w.history, fmt.Sprintf("step %d: ", w.step)+fmt.Sprintf(format, args...))
}

// Expected outcomes.

type outcome struct {
	kind     string // "ok", "invalid", "notfound", "conflict", "" (any error)
	field    string // invalid: the InvalidError field
	contains string // a substring of the error message
}

var okOutcome = outcome{kind: "ok"}

// maybeFault arms, now and then, a one-shot failure of one of the kernel methods the next
// op calls (the fake kernel fails EnsureBridge, CreateNetNS and AddVeth on request). If the
// model predicts success, the op must now fail and leave no trace.
func (w *modelWorld) maybeFault(want outcome, methods ...string) outcome {
	if w.r.IntN(8) != 0 {
		return want
	}
	method := w.pick(methods)
	w.logf("arm kernel fault in %s", method)
	if want.kind == "ok" {
		w.faultBefore = w.dump()
		want = outcome{kind: "fault"}
	}
	w.k.mu.Lock()
	w.k.failOn = method
	w.k.mu.Unlock()
	return want
}

func invalidOutcome(field, contains string) outcome {
	return outcome{kind: "invalid", field: field, contains: contains}
}

// expect compares err with the predicted outcome; it reports whether the op succeeded.
func (w *modelWorld) expect(op string, err error, want outcome) bool {
	w.t.Helper()
	w.logf("%s → %v (want %s %s)", op, err, want.kind, want.field)
	w.k.mu.Lock()
	w.k.failOn = "" // a fault the op did not reach must not hit the next one
	w.k.mu.Unlock()
	if want.kind == "fault" {
		// The op would have succeeded but the kernel failed: it must fail and undo
		// everything it did (records, addresses, kernel objects, files).
		if err == nil {
			w.t.Errorf("step %d: %s succeeded despite an injected kernel fault", w.step, op)
			return false
		}
		if after := w.dump(); after != w.faultBefore {
			w.t.Errorf("step %d: %s failed on a kernel fault (%v) but did not undo its changes:\nbefore:\n%s\nafter:\n%s",
				w.step, op, err, w.faultBefore, after)
		}
		w.faults++
		return false
	}
	if err == nil {
		if want.kind != "ok" {
			w.t.Errorf("step %d: %s succeeded; the model wants %+v", w.step, op, want)
		}
		w.succeeded++
		return want.kind == "ok"
	}
	if strings.ContainsAny(err.Error(), "\n\r") {
		w.t.Errorf("step %d: %s: error is not one line: %q", w.step, op, err)
	}
	var inv *InvalidError
	switch want.kind {
	case "ok":
		w.t.Errorf("step %d: %s failed: %v; the model wants success", w.step, op, err)
		return false
	case "invalid":
		if !errors.As(err, &inv) || (want.field != "" && inv.Field != want.field) {
			w.t.Errorf("step %d: %s: error %v; want an InvalidError of field %q", w.step, op, err, want.field)
		}
	case "notfound":
		if !errors.Is(err, store.ErrNotFound) {
			w.t.Errorf("step %d: %s: error %v; want ErrNotFound", w.step, op, err)
		}
	case "conflict":
		if !errors.Is(err, store.ErrConflict) {
			w.t.Errorf("step %d: %s: error %v; want ErrConflict", w.step, op, err)
		}
	}
	if want.contains != "" && !strings.Contains(err.Error(), want.contains) {
		w.t.Errorf("step %d: %s: error %q does not mention %q", w.step, op, err, want.contains)
	}
	w.refused++
	return false
}

// Random choices.

func (w *modelWorld) pick(names []string) string { return names[w.r.IntN(len(names))] }

// netName is an existing network name most of the time, sometimes an unknown one.
func (w *modelWorld) netName() string {
	if w.r.IntN(12) == 0 || len(w.nets) == 0 {
		return fmt.Sprintf("n%d", w.r.IntN(8))
	}
	var names []string
	for _, n := range w.nets {
		if n.bridge != "" {
			names = append(names, n.name)
		}
	}
	slices.Sort(names)
	return w.pick(names)
}

// sbName is an existing sandbox most of the time (in a random letter case), else a fresh one.
func (w *modelWorld) sbName() string {
	if w.r.IntN(4) == 0 || len(w.sbs) == 0 {
		return fmt.Sprintf("s%d", w.r.IntN(16))
	}
	names := slices.Sorted(maps.Keys(w.sbs))
	n := w.sbs[w.pick(names)].name
	if w.r.IntN(5) == 0 {
		n = strings.ToUpper(n)
	}
	return n
}

// randomSubnet is a small IPv4 subnet in 10.0.0.0/23, so they often overlap; sometimes one
// too small to use, sometimes none (the default pools).
func (w *modelWorld) randomSubnet() string {
	switch w.r.IntN(10) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("10.0.%d.%d/%d", w.r.IntN(2), 2*w.r.IntN(128), 31+w.r.IntN(2))
	}
	bits := 26 + w.r.IntN(5) // /26 … /30
	size := 1 << (32 - bits)
	off := w.r.IntN(512/size) * size
	return fmt.Sprintf("10.0.%d.%d/%d", off/256, off%256, bits)
}

// randomAddr is an address in or near the network's subnet of that family.
func (w *modelWorld) randomAddr(n *mNet, v6 bool) netip.Addr {
	s := n.v4
	if v6 {
		s = n.v6
	}
	if s == nil {
		if v6 {
			return netip.MustParseAddr("fd99::5")
		}
		return netip.MustParseAddr("10.9.9.9")
	}
	a := s.sub.Addr()
	size := 1 << min(8, a.BitLen()-s.sub.Bits())
	for range w.r.IntN(size + 2) {
		a = a.Next()
	}
	return a
}

// IPAM in the model.

func reservedIn(s *mSubnet, a netip.Addr) bool {
	if a == s.sub.Addr() || a == s.gw {
		return true
	}
	return a.Is4() && a == lastAddr(s.sub)
}

func (w *modelWorld) taken(netID string, a netip.Addr) *mSb {
	for _, sb := range w.sbs {
		if ep, ok := sb.eps[netID]; ok && (ep.ip4 == a || ep.ip6 == a) {
			return sb
		}
	}
	return nil
}

// allocate predicts the address an endpoint gets (static want or the lowest free one), or
// the refusal.
func (w *modelWorld) allocate(n *mNet, v6 bool, want netip.Addr, field string, pending []netip.Addr) (netip.Addr, outcome) {
	s := n.v4
	if v6 {
		s = n.v6
	}
	if s == nil {
		if want.IsValid() {
			return netip.Addr{}, invalidOutcome(field, "no subnet of this family")
		}
		return netip.Addr{}, okOutcome
	}
	if want.IsValid() {
		switch {
		case !s.sub.Contains(want):
			return netip.Addr{}, invalidOutcome(field, "not in subnet")
		case reservedIn(s, want):
			return netip.Addr{}, invalidOutcome(field, "reserved")
		}
		if holder := w.taken(n.id, want); holder != nil {
			return netip.Addr{}, invalidOutcome(field, "sandbox "+holder.name)
		}
		return want, okOutcome
	}
	for a := s.rng.Addr(); s.rng.Contains(a); a = a.Next() {
		if !reservedIn(s, a) && w.taken(n.id, a) == nil && !slices.Contains(pending, a) {
			return a, okOutcome
		}
	}
	return netip.Addr{}, outcome{kind: "conflict", contains: "no free address"}
}

// Operations.

func (w *modelWorld) randomOp() {
	switch x := w.r.IntN(100); {
	case x < 14:
		w.opCreateNetwork()
	case x < 40:
		w.opCreateSandbox()
	case x < 55:
		w.opConnect()
	case x < 65:
		w.opDisconnect()
	case x < 76:
		w.opRemoveSandbox()
	case x < 84:
		w.opRemoveNetwork()
	case x < 94:
		w.opRename()
	default:
		w.opRestart()
	}
}

func (w *modelWorld) opCreateNetwork() {
	name := fmt.Sprintf("n%d", w.r.IntN(8))
	if w.r.IntN(20) == 0 {
		name = w.pick([]string{"bridge", "HOST", "bad/name", "-x"})
	}
	req := api.NetworkCreate{Name: name, Internal: w.r.IntN(4) == 0}
	var sub netip.Prefix
	if s := w.randomSubnet(); s != "" {
		req.Subnets = []string{s}
		sub = netip.MustParsePrefix(s)
		if w.r.IntN(3) == 0 && sub.Bits() < 30 {
			bits := sub.Bits() + 1 + w.r.IntN(30-sub.Bits())
			off := w.r.IntN(1 << (bits - sub.Bits()))
			a := sub.Addr().As4()
			v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
			v += uint32(off) << (32 - bits)
			req.IPRange = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits).String()
		}
	}
	if w.r.IntN(4) == 0 {
		req.IPv6 = true
		if w.r.IntN(2) == 0 {
			// Small IPv6 subnets, overlapping each other now and then.
			req.Subnets = append(req.Subnets, fmt.Sprintf("fd00:0:0:%d::/%d", w.r.IntN(3), 124+w.r.IntN(3)))
		}
	}
	// Every field is checked before the store is looked at.
	tooSmall := false
	for _, s := range req.Subnets {
		p := netip.MustParsePrefix(s)
		tooSmall = tooSmall || p.Addr().Is4() && p.Bits() > 30
	}
	want := okOutcome
	switch {
	case checkName("name", name) != nil:
		want = invalidOutcome("name", "")
	case tooSmall:
		want = invalidOutcome("subnet", "too small")
	case w.nets[strings.ToLower(name)] != nil:
		want = outcome{kind: "conflict"}
	default:
		for _, s := range req.Subnets {
			if holder := w.overlapping(netip.MustParsePrefix(s)); holder != "" {
				want = invalidOutcome("subnet", "overlaps the subnet of network "+holder)
				break
			}
		}
	}
	op := fmt.Sprintf("network create %+v", req)
	want = w.maybeFault(want, "EnsureBridge")
	n, err := w.m.CreateNetwork(w.t.Context(), req)
	if !w.expect(op, err, want) {
		return
	}
	mn := modelNetFromRecord(n)
	// What the model can check of the record: the asked subnet, a free auto one, the range.
	if sub.IsValid() && (mn.v4 == nil || mn.v4.sub != sub) {
		w.t.Errorf("step %d: %s: IPv4 subnet %+v, want %s", w.step, op, mn.v4, sub)
	}
	if mn.v4 == nil || mn.v4.gw != mn.v4.sub.Addr().Next() {
		w.t.Errorf("step %d: %s: gateway %+v, want the first address", w.step, op, mn.v4)
	}
	if req.IPv6 != (mn.v6 != nil) {
		w.t.Errorf("step %d: %s: IPv6 subnet %+v", w.step, op, mn.v6)
	}
	if !sub.IsValid() && mn.v4 != nil && w.overlapping(mn.v4.sub) != "" {
		w.t.Errorf("step %d: %s: picked subnet %s overlaps network %s", w.step, op, mn.v4.sub, w.overlapping(mn.v4.sub))
	}
	if mn.v6 != nil && w.overlapping(mn.v6.sub) != "" {
		w.t.Errorf("step %d: %s: IPv6 subnet %s overlaps network %s", w.step, op, mn.v6.sub, w.overlapping(mn.v6.sub))
	}
	w.nets[strings.ToLower(name)] = mn
}

// overlapping returns the name of a network whose subnet overlaps p, or "".
func (w *modelWorld) overlapping(p netip.Prefix) string {
	for _, key := range slices.Sorted(maps.Keys(w.nets)) {
		n := w.nets[key]
		for _, s := range []*mSubnet{n.v4, n.v6} {
			if s != nil && s.sub.Overlaps(p) {
				return n.name
			}
		}
	}
	return ""
}

func (w *modelWorld) opCreateSandbox() {
	name := fmt.Sprintf("s%d", w.r.IntN(16))
	if w.r.IntN(25) == 0 {
		name = w.pick([]string{"a/b", "..", "-s", "s 1"})
	}
	req := api.SandboxCreate{Name: name}
	switch x := w.r.IntN(20); {
	case x == 0:
		req.Networks = []string{"none"}
	case x == 1:
		req.Networks = []string{"host"}
	case x == 2:
		req.Networks = []string{"container:" + w.sbName()}
	default:
		for range 1 + w.r.IntN(3)/2 { // one network twice as often as two
			req.Networks = append(req.Networks, w.netName())
		}
	}
	var firstNet *mNet
	if len(req.Networks) > 0 {
		firstNet = w.nets[strings.ToLower(req.Networks[0])]
	}
	if firstNet != nil && w.r.IntN(3) == 0 {
		req.IPv4 = w.randomAddr(firstNet, false).String()
	}
	if firstNet != nil && firstNet.v6 != nil && w.r.IntN(3) == 0 {
		req.IPv6 = w.randomAddr(firstNet, true).String()
	}

	want, sb := w.planSandbox(req)
	if sb != nil && sb.mode == store.ModeBridge {
		want = w.maybeFault(want, "CreateNetNS", "AddVeth")
	} else if sb != nil && sb.mode == store.ModeNone {
		want = w.maybeFault(want, "CreateNetNS")
	}
	op := fmt.Sprintf("sandbox create %+v", req)
	got, err := w.m.CreateSandbox(w.t.Context(), req)
	if !w.expect(op, err, want) {
		return
	}
	sb.id = got.ID
	// Endpoint IDs are not the model's business: addresses are checked against the store.
	w.sbs[strings.ToLower(name)] = sb
}

// planSandbox predicts a create (the checks in the order CreateSandbox makes them) and the
// sandbox it makes.
func (w *modelWorld) planSandbox(req api.SandboxCreate) (outcome, *mSb) {
	sb := &mSb{name: req.Name, mode: store.ModeBridge, eps: map[string]*mEp{}}
	if checkName("name", req.Name) != nil {
		return invalidOutcome("name", ""), nil
	}
	first := req.Networks[0]
	if first == "none" || first == "host" || strings.HasPrefix(first, "container:") {
		if req.IPv4 != "" || req.IPv6 != "" {
			return invalidOutcome("network", "need a bridge network"), nil
		}
	}
	if w.sbs[strings.ToLower(req.Name)] != nil {
		return outcome{kind: "conflict"}, nil
	}
	switch {
	case first == "none" || first == "host":
		sb.mode = first
		return okOutcome, sb
	case strings.HasPrefix(first, "container:"):
		target := w.sbs[strings.ToLower(strings.TrimPrefix(first, "container:"))]
		if target == nil {
			return invalidOutcome("network", "no such sandbox"), nil
		}
		if target.mode == store.ModeContainer {
			target = w.byID(target.container)
		}
		sb.mode, sb.container = store.ModeContainer, target.id
		return okOutcome, sb
	}
	var nets []*mNet
	for _, ref := range req.Networks {
		n := w.nets[strings.ToLower(ref)]
		if n == nil {
			return outcome{kind: "notfound"}, nil
		}
		if slices.Contains(nets, n) {
			return invalidOutcome("network", "given twice"), nil
		}
		nets = append(nets, n)
	}
	ip4, ip6 := addrOrZero(req.IPv4), addrOrZero(req.IPv6)
	if nets[0].predefined && (ip4.IsValid() || ip6.IsValid()) {
		return invalidOutcome("ip", "user defined networks only"), nil
	}
	for i, n := range nets {
		ep := &mEp{}
		var o outcome
		want4, want6 := netip.Addr{}, netip.Addr{}
		if i == 0 {
			want4, want6 = ip4, ip6
		}
		if ep.ip4, o = w.allocate(n, false, want4, "ip", nil); o.kind != "ok" {
			return o, nil
		}
		if n.v6 != nil {
			if ep.ip6, o = w.allocate(n, true, want6, "ip6", nil); o.kind != "ok" {
				return o, nil
			}
		} else if want6.IsValid() {
			return invalidOutcome("ip6", "not IPv6-enabled"), nil
		}
		sb.eps[n.id] = ep
	}
	return okOutcome, sb
}

func addrOrZero(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func (w *modelWorld) byID(id string) *mSb {
	for _, sb := range w.sbs {
		if sb.id == id {
			return sb
		}
	}
	w.t.Fatalf("model: no sandbox %s", id)
	return nil
}

func (w *modelWorld) netByID(id string) *mNet {
	for _, n := range w.nets {
		if n.id == id {
			return n
		}
	}
	return nil
}

func (w *modelWorld) opConnect() {
	netRef, sbRef := w.netName(), w.sbName()
	req := api.NetworkConnect{Network: netRef, Sandbox: sbRef}
	n, sb := w.nets[strings.ToLower(netRef)], w.sbs[strings.ToLower(sbRef)]
	if n != nil && w.r.IntN(3) == 0 {
		req.IPv4 = w.randomAddr(n, false).String()
	}
	want := okOutcome
	var ep *mEp
	switch {
	case n == nil || sb == nil:
		want = outcome{kind: "notfound"}
	case sb.mode != store.ModeBridge:
		want = invalidOutcome("container", "network mode")
	case sb.eps[n.id] != nil:
		want = outcome{kind: "conflict", contains: "already connected"}
	case n.predefined && req.IPv4 != "":
		want = invalidOutcome("ip", "user defined networks only")
	default:
		ep = &mEp{}
		ep.ip4, want = w.allocate(n, false, addrOrZero(req.IPv4), "ip", nil)
		if want.kind == "ok" && n.v6 != nil {
			ep.ip6, want = w.allocate(n, true, netip.Addr{}, "ip6", nil)
		}
	}
	op := fmt.Sprintf("network connect %s %+v", netRef, req)
	if want.kind == "ok" {
		want = w.maybeFault(want, "AddVeth")
	}
	if w.expect(op, w.m.Connect(w.t.Context(), req), want) {
		sb.eps[n.id] = ep
	}
}

func (w *modelWorld) opDisconnect() {
	netRef, sbRef := w.netName(), w.sbName()
	n, sb := w.nets[strings.ToLower(netRef)], w.sbs[strings.ToLower(sbRef)]
	want := okOutcome
	if n == nil || sb == nil || sb.eps[n.id] == nil {
		want = outcome{kind: "notfound"}
	}
	op := fmt.Sprintf("network disconnect %s %s", netRef, sbRef)
	if w.expect(op, w.m.Disconnect(w.t.Context(), api.NetworkDisconnect{Network: netRef, Sandbox: sbRef}), want) {
		delete(sb.eps, n.id)
	}
}

func (w *modelWorld) opRemoveSandbox() {
	ref := w.sbName()
	sb := w.sbs[strings.ToLower(ref)]
	want := okOutcome
	if sb == nil {
		want = outcome{kind: "notfound"}
	} else {
		for _, key := range slices.Sorted(maps.Keys(w.sbs)) {
			if o := w.sbs[key]; o.mode == store.ModeContainer && o.container == sb.id {
				want = outcome{kind: "conflict", contains: "shares its netns"}
				break
			}
		}
	}
	op := "sandbox rm -f " + ref
	if w.expect(op, w.m.RemoveSandbox(w.t.Context(), api.SandboxRemove{Sandbox: ref, Force: true}), want) {
		delete(w.sbs, strings.ToLower(ref))
	}
}

func (w *modelWorld) opRemoveNetwork() {
	ref := w.netName()
	if w.r.IntN(10) == 0 {
		ref = w.pick([]string{"bridge", "none", "host"})
	}
	n := w.nets[strings.ToLower(ref)]
	want := okOutcome
	switch {
	case n == nil:
		want = outcome{kind: "notfound"}
	case n.predefined:
		want = outcome{kind: "conflict", contains: "pre-defined"}
	default:
		for _, sb := range w.sbs {
			if sb.eps[n.id] != nil {
				want = outcome{kind: "conflict", contains: "active endpoints"}
			}
		}
	}
	if w.expect("network rm "+ref, w.m.RemoveNetwork(w.t.Context(), api.NetworkRemove{Network: ref}), want) {
		delete(w.nets, strings.ToLower(ref))
	}
}

func (w *modelWorld) opRename() {
	ref := w.sbName()
	newName := fmt.Sprintf("s%d", w.r.IntN(16))
	switch w.r.IntN(10) {
	case 0:
		newName = strings.ToUpper(ref) // same sandbox, other case
	case 1:
		newName = w.pick([]string{"x/y", "..", "-r", ""})
	}
	sb := w.sbs[strings.ToLower(ref)]
	want := okOutcome
	switch {
	case checkName("name", newName) != nil:
		want = invalidOutcome("name", "")
	case sb == nil:
		want = outcome{kind: "notfound"}
	case w.sbs[strings.ToLower(newName)] != nil && w.sbs[strings.ToLower(newName)] != sb:
		want = outcome{kind: "conflict"}
	}
	op := fmt.Sprintf("sandbox rename %s %s", ref, newName)
	if w.expect(op, w.m.RenameSandbox(w.t.Context(), api.SandboxRename{Sandbox: ref, Name: newName}), want) {
		delete(w.sbs, strings.ToLower(ref))
		sb.name = newName
		w.sbs[strings.ToLower(newName)] = sb
	}
}

// opRestart is a graceful restart: nothing a user can see may change.
func (w *modelWorld) opRestart() {
	w.m.Settle()
	before := w.dump()
	if err := w.st.Close(); err != nil {
		w.t.Fatalf("close store: %v", err)
	}
	w.open()
	w.logf("restart")
	if after := w.dump(); after != before {
		w.t.Errorf("step %d: restart changed the state:\nbefore:\n%s\nafter:\n%s", w.step, before, after)
	}
}

// dump is the user-visible state: every record (JSON-free, field by field), kernel objects and files.
func (w *modelWorld) dump() string {
	snap := w.st.Snapshot()
	var b strings.Builder
	for _, n := range snap.Networks() {
		fmt.Fprintf(&b, "net %s %s %s %v %v %v %+v\n", n.Name, n.ID, n.Bridge, n.Internal, n.IPv6, n.Predefined, n.Subnets)
		for _, a := range snap.NetworkAddresses(n.ID) {
			fmt.Fprintf(&b, "  addr %s %s\n", a.Addr, a.Owner)
		}
	}
	for _, sb := range snap.Sandboxes() {
		fmt.Fprintf(&b, "sb %s %s %s %s %s %s %d\n", sb.Name, sb.ID, sb.Mode, sb.Container, sb.NetNSPath, sb.State, sb.Seq)
		for _, ep := range snap.SandboxEndpoints(sb.ID) {
			fmt.Fprintf(&b, "  ep %s %s %s %s %s %s %s %v %d\n", ep.ID, ep.NetworkID, ep.IfName, ep.HostVeth, ep.MAC, ep.IPv4, ep.IPv6, ep.DNSNames, ep.Seq)
		}
	}
	w.k.mu.Lock()
	for _, l := range slices.Sorted(maps.Keys(w.k.links)) {
		fmt.Fprintf(&b, "link %s %s\n", l, w.k.links[l])
	}
	for _, p := range slices.Sorted(maps.Keys(w.k.netns)) {
		fmt.Fprintf(&b, "netns %s\n", p)
	}
	w.k.mu.Unlock()
	for _, sub := range []string{"etc", "state"} {
		_ = filepath.WalkDir(filepath.Join(w.dir, sub), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				c, _ := os.ReadFile(p)
				fmt.Fprintf(&b, "file %s\n%s", p, c)
			}
			return nil
		})
	}
	return b.String()
}

// Invariants.

func (w *modelWorld) check() {
	t := w.t
	t.Helper()
	w.m.Settle() // removed sandboxes' veths go in the background; the model allocates as if gone
	snap := w.st.Snapshot()

	// Networks: the model's, with their subnets.
	gotNets := map[string]*store.Network{}
	for _, n := range snap.Networks() {
		gotNets[strings.ToLower(n.Name)] = n
	}
	if g, m := slices.Sorted(maps.Keys(gotNets)), slices.Sorted(maps.Keys(w.nets)); !slices.Equal(g, m) {
		t.Errorf("step %d: networks %v; model %v", w.step, g, m)
		return
	}
	for key, n := range gotNets {
		if mn := w.nets[key]; mn.id != n.ID || mn.name != n.Name {
			t.Errorf("step %d: network %s is %s/%s; model %s/%s", w.step, key, n.Name, n.ID, mn.name, mn.id)
		}
	}

	// Sandboxes and endpoints: the model's, with the predicted addresses.
	gotSbs := map[string]*store.Sandbox{}
	for _, sb := range snap.Sandboxes() {
		gotSbs[strings.ToLower(sb.Name)] = sb
		if sb.State != store.StateReady {
			t.Errorf("step %d: sandbox %s in state %s between operations", w.step, sb.Name, sb.State)
		}
	}
	if g, m := slices.Sorted(maps.Keys(gotSbs)), slices.Sorted(maps.Keys(w.sbs)); !slices.Equal(g, m) {
		t.Errorf("step %d: sandboxes %v; model %v", w.step, g, m)
		return
	}
	wantNetNS := map[string]bool{}
	wantLinks := map[string]string{"lo": "device", "eth0": "device"}
	for _, n := range snap.Networks() {
		if n.Driver == store.DriverBridge {
			wantLinks[n.Bridge] = "bridge"
		}
	}
	for key, sb := range gotSbs {
		msb := w.sbs[key]
		if sb.ID != msb.id || sb.Name != msb.name || sb.Mode != msb.mode || sb.Container != msb.container {
			t.Errorf("step %d: sandbox %+v; model %+v", w.step, sb, msb)
		}
		if want := filepath.Join(w.dir, "netns", sb.Name); sb.NetNSPath != want {
			t.Errorf("step %d: sandbox %s pinned at %s; want %s", w.step, sb.Name, sb.NetNSPath, want)
		}
		wantNetNS[sb.NetNSPath] = true
		eps := snap.SandboxEndpoints(sb.ID)
		if len(eps) != len(msb.eps) {
			t.Errorf("step %d: sandbox %s has %d endpoints; model %d", w.step, sb.Name, len(eps), len(msb.eps))
		}
		ifNames := map[string]bool{}
		for _, ep := range eps {
			if ifNames[ep.IfName] {
				t.Errorf("step %d: sandbox %s has two endpoints named %s", w.step, sb.Name, ep.IfName)
			}
			ifNames[ep.IfName] = true
			wantLinks[ep.HostVeth] = "veth"
			mep := msb.eps[ep.NetworkID]
			if mep == nil {
				t.Errorf("step %d: sandbox %s has an endpoint on %s the model does not know", w.step, sb.Name, ep.NetworkID)
				continue
			}
			if ep.IPv4 != mep.ip4 || ep.IPv6 != mep.ip6 {
				t.Errorf("step %d: sandbox %s on %s has %s/%s; model %s/%s", w.step, sb.Name, w.netByID(ep.NetworkID).name,
					ep.IPv4, ep.IPv6, mep.ip4, mep.ip6)
			}
			if !slices.Contains(ep.DNSNames, strings.ToLower(sb.Name)) {
				t.Errorf("step %d: endpoint of %s answers to %v, not its name", w.step, sb.Name, ep.DNSNames)
			}
		}
	}

	// Addresses: inside the subnet, never reserved, unique per network, and the store's
	// address table is exactly the endpoints' addresses (no leak, no double).
	for _, n := range snap.Networks() {
		mn := w.nets[strings.ToLower(n.Name)]
		fromEps := map[netip.Addr]string{}
		for _, ep := range snap.NetworkEndpoints(n.ID) {
			for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
				if !a.IsValid() {
					continue
				}
				s := mn.v4
				if a.Is6() {
					s = mn.v6
				}
				if s == nil || !s.sub.Contains(a) || reservedIn(s, a) {
					t.Errorf("step %d: %s on network %s is outside its subnet or reserved", w.step, a, n.Name)
				}
				if other, dup := fromEps[a]; dup {
					t.Errorf("step %d: %s held twice on %s (endpoints %s and %s)", w.step, a, n.Name, other, ep.ID)
				}
				fromEps[a] = ep.ID
			}
		}
		fromTable := map[netip.Addr]string{}
		for _, a := range snap.NetworkAddresses(n.ID) {
			fromTable[a.Addr] = a.Owner
		}
		if !maps.Equal(fromEps, fromTable) {
			t.Errorf("step %d: network %s: address table %v; endpoints hold %v", w.step, n.Name, fromTable, fromEps)
		}
	}

	// Kernel: exactly the records' bridges, veths and netns pins.
	w.k.mu.Lock()
	gotLinks, gotNetNS := maps.Clone(w.k.links), maps.Clone(w.k.netns)
	w.k.mu.Unlock()
	if !maps.Equal(gotLinks, wantLinks) {
		t.Errorf("step %d: kernel links %v; records want %v", w.step, gotLinks, wantLinks)
	}
	if !maps.Equal(gotNetNS, wantNetNS) {
		t.Errorf("step %d: kernel netns %v; records want %v", w.step, slices.Sorted(maps.Keys(gotNetNS)), slices.Sorted(maps.Keys(wantNetNS)))
	}

	w.checkFiles(snap, gotSbs)
	w.checkDNS(snap, gotSbs)
}

// checkFiles: each sandbox has its two files in both places, equal to what the resolver
// renders now, and no directory outlives its sandbox.
func (w *modelWorld) checkFiles(snap *store.Snapshot, sbs map[string]*store.Sandbox) {
	t := w.t
	t.Helper()
	wantEtc, wantState := []string{}, []string{}
	host := w.m.cfg.HostDNS()
	for _, sb := range sbs {
		wantEtc = append(wantEtc, sb.Name)
		wantState = append(wantState, sb.ID)
		want := map[string][]byte{"resolv.conf": resolver.ResolvConf(snap, sb.ID, host), "hosts": resolver.Hosts(snap, sb.ID)}
		for _, dir := range []string{filepath.Join(w.dir, "etc", sb.Name), filepath.Join(w.dir, "state", "sandboxes", sb.ID)} {
			for name, content := range want {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(got) != string(content) {
					t.Errorf("step %d: %s/%s is stale or missing (%v):\n%s\nwant:\n%s", w.step, dir, name, err, got, content)
				}
			}
		}
	}
	for dir, want := range map[string][]string{filepath.Join(w.dir, "etc"): wantEtc, filepath.Join(w.dir, "state", "sandboxes"): wantState} {
		var got []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			got = append(got, e.Name())
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("step %d: %s holds %v; want %v", w.step, dir, got, want)
		}
	}
}

// checkDNS: a sandbox resolves another's name exactly when they share a user-defined
// network, and then to an address the other holds on a shared network.
func (w *modelWorld) checkDNS(snap *store.Snapshot, sbs map[string]*store.Sandbox) {
	t := w.t
	t.Helper()
	userNets := func(sb *store.Sandbox) map[string]netip.Addr {
		if sb.Mode == store.ModeContainer {
			if s, err := snap.Sandbox(sb.Container); err == nil {
				sb = s
			}
		}
		out := map[string]netip.Addr{}
		for _, ep := range snap.SandboxEndpoints(sb.ID) {
			if n, err := snap.Network(ep.NetworkID); err == nil && n.UserDefined() {
				out[n.Name] = ep.IPv4
			}
		}
		return out
	}
	for _, asker := range sbs {
		mine := userNets(asker)
		for _, target := range sbs {
			if target.Mode != store.ModeBridge || target.ID == asker.ID || asker.Container == target.ID {
				continue
			}
			theirs := userNets(target)
			res := resolver.Lookup(snap, asker.ID, target.Name, resolver.TypeA)
			shared := false
			for nw := range theirs {
				_, ok := mine[nw]
				shared = shared || ok
			}
			switch {
			case !shared && res.Kind != resolver.NotOurs:
				t.Errorf("step %d: %s resolves %s (%+v) without sharing a network", w.step, asker.Name, target.Name, res)
			case shared && res.Kind != resolver.Found:
				t.Errorf("step %d: %s cannot resolve %s (%+v) on a shared network", w.step, asker.Name, target.Name, res)
			case shared:
				if _, ok := mine[res.Network]; !ok || !slices.Contains(res.Addrs, theirs[res.Network]) {
					t.Errorf("step %d: %s resolves %s to %+v; %s holds %v", w.step, asker.Name, target.Name, res, target.Name, theirs)
				}
			}
		}
	}
}
