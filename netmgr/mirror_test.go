package netmgr

import (
	"slices"
	"strings"
	"testing"

	"berth/api"
	"berth/store"
)

// TestApplyRemote: a network created on A and a sandbox on it reach B through the mirror's
// updates (full, then incremental), as records, addresses and VXLAN peers; a rename, the
// sandbox's removal and the network's removal follow; a full update drops what it does
// not list.
func TestApplyRemote(t *testing.T) {
	c := newFakeCluster()
	a, _ := newClusterManager(t, c, "A", "192.0.2.1")
	b, kb := newClusterManager(t, c, "B", "192.0.2.2")
	ctx := t.Context()
	n, err := a.CreateNetwork(ctx, api.NetworkCreate{Name: "ov", Driver: store.DriverOverlay})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyRemote(ctx, c.update("B")); err != nil {
		t.Fatal(err)
	}
	bn, err := b.cfg.Store.Snapshot().Network(n.ID)
	if err != nil {
		t.Fatalf("B has no network %s: %v", n.ID, err)
	}
	if bn.Name != "ov" || bn.VNI != n.VNI || !bn.Global() || bn.Subnets[0] != n.Subnets[0] || bn.Bridge != n.Bridge || bn.MTU != fakeUnderlayMTU-50 {
		t.Fatalf("B's record %+v, A's %+v", bn, n)
	}
	dev := VxlanName(n.VNI, n.ID)
	if kb.kind(bn.Bridge) != "bridge" || kb.kind(dev) != "vxlan" {
		t.Fatalf("B's devices: %v", kb.devices())
	}

	web, err := a.CreateSandbox(ctx, api.SandboxCreate{Name: "web", Networks: []string{"ov"}, Aliases: []string{"www"}})
	if err != nil {
		t.Fatal(err)
	}
	c.publish(c.host("A", "192.0.2.1"), a.cfg.Store.Snapshot())
	u := c.update("B")
	u.Full = false
	if err := b.ApplyRemote(ctx, u); err != nil {
		t.Fatal(err)
	}
	aep, _ := a.cfg.Store.Snapshot().EndpointOf(n.ID, web.ID)
	snap := b.cfg.Store.Snapshot()
	eps := snap.EndpointsByName(n.ID, "www")
	if len(eps) != 1 || !eps[0].Remote() || eps[0].IPv4 != aep.IPv4 || eps[0].SandboxName != "web" {
		t.Fatalf("B's endpoints for www: %+v", eps)
	}
	if _, err := snap.Address(n.ID, aep.IPv4); err != nil {
		t.Fatalf("B has no address record of %s: %v", aep.IPv4, err)
	}
	want := []string{aep.MAC + " [" + aep.IPv4.String() + "]@192.0.2.1"}
	if got := kb.vxlanPeers(dev); !slices.Equal(got, want) {
		t.Fatalf("B's peers %v, want %v", got, want)
	}
	// B's own sandbox on ov gets another address than web's.
	db, err := b.CreateSandbox(ctx, api.SandboxCreate{Name: "db", Networks: []string{"ov"}})
	if err != nil {
		t.Fatal(err)
	}
	bep, _ := b.cfg.Store.Snapshot().EndpointOf(n.ID, db.ID)
	if bep.IPv4 == aep.IPv4 {
		t.Fatalf("db got web's address %s", bep.IPv4)
	}
	// A full update without web (A's lease gone) drops it, and never B's own.
	c.mu.Lock()
	delete(c.endpoints, aep.ID)
	c.mu.Unlock()
	if err := b.ApplyRemote(ctx, c.update("B")); err != nil {
		t.Fatal(err)
	}
	snap = b.cfg.Store.Snapshot()
	if eps := snap.EndpointsByName(n.ID, "web"); len(eps) != 0 {
		t.Fatalf("web still on B: %+v", eps)
	}
	if _, err := snap.Address(n.ID, aep.IPv4); err == nil {
		t.Fatalf("web's address record still on B")
	}
	if got := kb.vxlanPeers(dev); len(got) != 0 {
		t.Fatalf("B's peers after web left: %v", got)
	}
	if _, err := snap.EndpointOf(n.ID, db.ID); err != nil {
		t.Fatalf("B's own endpoint dropped: %v", err)
	}
	// Removed from the cluster while B has db on it: kept; once db is gone, removed.
	if err := b.ApplyRemote(ctx, RemoteUpdate{RemovedNetworks: []string{n.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cfg.Store.Snapshot().Network(n.ID); err != nil {
		t.Fatalf("network removed under B's sandbox: %v", err)
	}
	if err := b.RemoveSandbox(ctx, api.SandboxRemove{Sandbox: "db", Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyRemote(ctx, RemoteUpdate{RemovedNetworks: []string{n.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cfg.Store.Snapshot().Network(n.ID); err == nil {
		t.Fatalf("network still on B")
	}
	if kb.kind(dev) != "" || kb.kind(bn.Bridge) != "" {
		t.Fatalf("B's devices left: %v", kb.devices())
	}
}

// TestApplyRemoteNameTaken: a global network whose name a local network has here is
// skipped, and the rest of the update applies.
func TestApplyRemoteNameTaken(t *testing.T) {
	c := newFakeCluster()
	a, _ := newClusterManager(t, c, "A", "192.0.2.1")
	b, _ := newClusterManager(t, c, "B", "192.0.2.2")
	ctx := t.Context()
	if _, err := b.CreateNetwork(ctx, api.NetworkCreate{Name: "ov"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateNetwork(ctx, api.NetworkCreate{Name: "ov", Driver: store.DriverOverlay}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateNetwork(ctx, api.NetworkCreate{Name: "ov2", Driver: store.DriverOverlay}); err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyRemote(ctx, c.update("B")); err != nil {
		t.Fatal(err)
	}
	snap := b.cfg.Store.Snapshot()
	if n, err := snap.NetworkByName("ov"); err != nil || n.Global() {
		t.Fatalf("B's local ov replaced: %+v %v", n, err)
	}
	if n, err := snap.NetworkByName("ov2"); err != nil || !n.Global() {
		t.Fatalf("ov2 not mirrored: %+v %v", n, err)
	}
}

// TestRestoreOverlay: after a reboot (the kernel objects gone, the store kept) Restore
// makes an overlay network's bridge and VXLAN device again, with its remote endpoints as
// peers, before any update of the mirror; a VXLAN device with no record goes.
func TestRestoreOverlay(t *testing.T) {
	c := newFakeCluster()
	a, _ := newClusterManager(t, c, "A", "192.0.2.1")
	b, _ := newClusterManager(t, c, "B", "192.0.2.2")
	ctx := t.Context()
	n, err := a.CreateNetwork(ctx, api.NetworkCreate{Name: "ov", Driver: store.DriverOverlay})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateSandbox(ctx, api.SandboxCreate{Name: "web", Networks: []string{"ov"}}); err != nil {
		t.Fatal(err)
	}
	c.publish(c.host("A", "192.0.2.1"), a.cfg.Store.Snapshot())
	if err := b.ApplyRemote(ctx, c.update("B")); err != nil {
		t.Fatal(err)
	}
	k := newFakeKernel()
	k.links["vx-00beef-12345"] = "vxlan" // a device of a network no longer recorded
	cfg := b.cfg
	cfg.Kernel = k
	b2 := New(cfg)
	if err := b2.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	dev := VxlanName(n.VNI, n.ID)
	if k.kind(dev) != "vxlan" || k.kind(n.Bridge) != "bridge" {
		t.Fatalf("after restore: links %v", k.devices())
	}
	if got := k.vxlanPeers(dev); len(got) != 1 || !strings.HasSuffix(got[0], "@192.0.2.1") {
		t.Fatalf("after restore: peers %v", got)
	}
	if k.kind("vx-00beef-12345") != "" {
		t.Fatalf("orphaned vxlan device kept: %v", k.devices())
	}
}

// kind is the kind of link name in the fake kernel ("" if none), read under its lock: the
// reaper deletes veths from its own goroutine.
func (k *fakeKernel) kind(name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.links[name]
}
