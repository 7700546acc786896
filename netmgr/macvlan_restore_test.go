package netmgr

import (
	"net/netip"
	"slices"
	"testing"

	"berth/api"
	"berth/store"
)

// restoreRig has a macvlan network with a shim on eth0 (lan), one on a VLAN berth made
// (vlan), an internal ipvlan one (iso), and a sandbox on each.
type restoreRig struct {
	m              *Manager
	k              *fakeKernel
	lan, vlan, iso *store.Network
	sbs            map[string]*store.Sandbox
}

func newRestoreRig(t *testing.T) *restoreRig {
	t.Helper()
	m, k := newTestManager(t)
	r := &restoreRig{m: m, k: k, lan: lanNet(t, m), sbs: map[string]*store.Sandbox{}}
	r.vlan = mustNetwork(t, m, onParentNet("vlan", "macvlan", "10.20.0.0/24", "parent=eth0.20"))
	r.iso = mustNetwork(t, m, onParentNet("iso", "ipvlan", "10.21.0.0/24"))
	for _, name := range []string{"lan", "vlan", "iso"} {
		r.sbs[name], _ = mustSandbox(t, m, api.SandboxCreate{Name: "on-" + name, Networks: []string{name}})
	}
	return r
}

// restart is a new Manager over the same store and kernel, as after a daemon restart or
// kill -9; it counts the kernel calls its Restore makes.
func (r *restoreRig) restart(t *testing.T) (*Manager, map[string]int) {
	t.Helper()
	calls := map[string]int{}
	r.k.done = func(op string) { calls[op]++ }
	defer func() { r.k.done = nil }()
	m2 := New(r.m.cfg)
	if err := m2.Restore(t.Context()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return m2, calls
}

// TestSubIfRestoreRestart: a restart with everything in place changes nothing: no
// interface is remade (that would drop the sandboxes' connections).
func TestSubIfRestoreRestart(t *testing.T) {
	r := newRestoreRig(t)
	before := map[string][]string{}
	for name, sb := range r.sbs {
		before[name] = r.k.subIfs(sb.NetNSPath)
	}
	_, calls := r.restart(t)
	if calls["AddSubIf"] != 0 || calls["DeleteLinkIn"] != 0 || calls["DeleteLink"] != 0 {
		t.Errorf("restart made kernel changes: %v", calls)
	}
	for name, sb := range r.sbs {
		if got := r.k.subIfs(sb.NetNSPath); !slices.Equal(got, before[name]) {
			t.Errorf("%s: interfaces %v; before %v", name, got, before[name])
		}
	}
	if got := r.k.shimRoutes(ShimName(r.lan.ID)); !slices.Equal(got, []string{"192.168.50.128/32"}) {
		t.Errorf("shim routes %v", got)
	}
}

// TestSubIfRestoreParentsGone: the parents berth made are gone (deleted by hand, which
// takes their children along) while the sandboxes' netns live: restore makes the parents
// and the interfaces on them again, with their default routes.
func TestSubIfRestoreParentsGone(t *testing.T) {
	r := newRestoreRig(t)
	want := map[string][]string{}
	for name, sb := range r.sbs {
		want[name] = r.k.subIfs(sb.NetNSPath)
	}
	for _, l := range []string{"eth0.20", r.iso.Parent.Name, PeerName(r.iso.Parent.Name), ShimName(r.lan.ID)} {
		delete(r.k.links, l)
	}
	delete(r.k.nsLinks, r.sbs["vlan"].NetNSPath)
	delete(r.k.nsLinks, r.sbs["iso"].NetNSPath)
	r.k.gw[r.sbs["vlan"].NetNSPath] = [2]netip.Addr{}
	_, calls := r.restart(t)
	if calls["AddSubIf"] != 2 {
		t.Errorf("%d interfaces remade; want 2 (those on the remade parents)", calls["AddSubIf"])
	}
	for name, sb := range r.sbs {
		if got := r.k.subIfs(sb.NetNSPath); !slices.Equal(got, want[name]) {
			t.Errorf("%s: interfaces %v; want %v", name, got, want[name])
		}
	}
	if r.k.links["eth0.20"] != "vlan" || r.k.links[r.iso.Parent.Name] != "veth-parent" || r.k.links[ShimName(r.lan.ID)] != "shim" {
		t.Errorf("parents and shim not remade: %v", r.k.links)
	}
	if gw := r.k.gw[r.sbs["vlan"].NetNSPath]; gw[0].String() != "10.20.0.1" {
		t.Errorf("default route of the remade interface via %v; want 10.20.0.1", gw[0])
	}
	if got := r.k.shimRoutes(ShimName(r.lan.ID)); !slices.Equal(got, []string{"192.168.50.128/32"}) {
		t.Errorf("shim routes %v", got)
	}
}

// TestSubIfRestoreReboot: after a reboot no netns, parent berth made, or shim is left:
// the sandboxes are dropped with their addresses, the networks get their parents and
// shims back, with no route.
func TestSubIfRestoreReboot(t *testing.T) {
	r := newRestoreRig(t)
	r.k.links["eth0.30"] = "vlan" // the user's VLAN device, gone after the reboot too
	n30 := mustNetwork(t, r.m, onParentNet("v30", "macvlan", "10.30.0.0/24", "parent=eth0.30"))
	if n30.ParentCreated {
		t.Fatalf("the user's eth0.30 recorded as berth's")
	}
	for l, kind := range r.k.links {
		if kind != "device" {
			delete(r.k.links, l)
		}
	}
	clear(r.k.netns)
	clear(r.k.nsLinks)
	clear(r.k.gw)
	m2, _ := r.restart(t)
	snap := m2.cfg.Store.Snapshot()
	if n := len(snap.Sandboxes()); n != 0 {
		t.Errorf("%d sandboxes after a reboot", n)
	}
	for _, n := range []*store.Network{r.lan, r.vlan, r.iso} {
		if a := snap.NetworkAddresses(n.ID); len(a) != 0 {
			t.Errorf("%s: addresses still allocated %v", n.Name, a)
		}
	}
	for _, l := range []string{"eth0.20", "eth0.30", r.iso.Parent.Name, PeerName(r.iso.Parent.Name), ShimName(r.lan.ID)} {
		if _, ok := r.k.links[l]; !ok {
			t.Errorf("%s not remade", l)
		}
	}
	if got := r.k.shimRoutes(ShimName(r.lan.ID)); len(got) != 0 {
		t.Errorf("shim routes %v with no sandbox", got)
	}
	// berth made eth0.30 this time: network rm removes it.
	if n, _ := snap.Network(n30.ID); n == nil || !n.ParentCreated {
		t.Errorf("eth0.30 remade by berth but not recorded as berth's: %+v", n)
	}
}

// TestSubIfRestoreBrokenParent: a user's parent that is gone (a NIC unplugged) leaves that
// network's sandboxes as they are with a warning; every other network and sandbox comes
// back.
func TestSubIfRestoreBrokenParent(t *testing.T) {
	r := newRestoreRig(t)
	r.k.links["eth1"] = "device"
	mustNetwork(t, r.m, onParentNet("nic", "macvlan", "10.40.0.0/24", "parent=eth1"))
	sb, _ := mustSandbox(t, r.m, api.SandboxCreate{Name: "on-nic", Networks: []string{"nic"}})
	delete(r.k.links, "eth1")
	delete(r.k.nsLinks, sb.NetNSPath)
	delete(r.k.links, "eth0.20")
	delete(r.k.nsLinks, r.sbs["vlan"].NetNSPath)
	m2, calls := r.restart(t)
	if calls["AddSubIf"] != 1 {
		t.Errorf("%d interfaces remade; want 1 (vlan's)", calls["AddSubIf"])
	}
	if _, err := m2.cfg.Store.Snapshot().SandboxByName("on-nic"); err != nil {
		t.Errorf("sandbox on the broken network dropped: %v", err)
	}
	if got := r.k.subIfs(r.sbs["vlan"].NetNSPath); len(got) != 1 {
		t.Errorf("vlan sandbox interfaces %v", got)
	}
}

// TestSubIfRestoreSweep: devices named like berth's internal parents, shims and temporary
// sandbox interfaces with no record are deleted; those of live networks stay.
func TestSubIfRestoreSweep(t *testing.T) {
	r := newRestoreRig(t)
	orphans := []string{"bmv-0123456789", "bmp-0123456789", "bsh-0123456789a", "bsi-0123456789a"}
	for _, l := range orphans {
		r.k.links[l] = "orphan"
	}
	r.k.links["bmv-mine"] = "device" // not berth's naming: left alone
	r.restart(t)
	for _, l := range orphans {
		if _, ok := r.k.links[l]; ok {
			t.Errorf("orphan %s not swept", l)
		}
	}
	for _, l := range []string{"bmv-mine", "eth0", "eth0.20", r.iso.Parent.Name, PeerName(r.iso.Parent.Name), ShimName(r.lan.ID)} {
		if _, ok := r.k.links[l]; !ok {
			t.Errorf("%s swept", l)
		}
	}
}

// TestSubIfRestoreUndoesIntent: a create on a macvlan network cut short before its commit
// is undone, interface included.
func TestSubIfRestoreUndoesIntent(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, onParentNet("app", "macvlan", "10.50.0.0/24", "parent=eth0"))
	sb, ep := cutShortCreate(t, m, "half")
	if ep.HostVeth != "" || len(k.subIfs(sb.NetNSPath)) != 1 {
		t.Fatalf("cut-short create: veth %q, interfaces %v", ep.HostVeth, k.subIfs(sb.NetNSPath))
	}
	var ops []string
	k.done = func(op string) { ops = append(ops, op) }
	if err := m.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	k.done = nil
	if i, j := slices.Index(ops, "DeleteLinkIn"), slices.Index(ops, "DeleteNetNS"); i < 0 || j < i {
		t.Errorf("undo's kernel calls %v: want DeleteLinkIn before DeleteNetNS", ops)
	}
	if k.netns[sb.NetNSPath] {
		t.Errorf("netns of the undone create left")
	}
}
