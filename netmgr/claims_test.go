package netmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/api"
	"berth/store"
)

// newClusterManager returns a restored Manager of host id on cluster c.
func newClusterManager(t *testing.T, c *fakeCluster, id, addr string) (*Manager, *fakeKernel) {
	t.Helper()
	k := newFakeKernel()
	dir := t.TempDir()
	m := New(Config{Store: store.NewMemory(), Kernel: k, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NetNSDir: dir + "/netns", FilesDir: dir + "/etc", RunDir: dir + "/state", Cluster: c.host(id, addr)})
	if err := m.Restore(t.Context()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return m, k
}

// putOverlay records the global network "ov" (10.0.1.0/24) in c and, as the mirror does,
// in each Manager's store, with its bridge in each fake kernel.
func putOverlay(t *testing.T, c *fakeCluster, ms ...*Manager) *store.Network {
	t.Helper()
	id := strings.Repeat("0f", 32)
	n := &store.Network{ID: id, Name: "ov", Driver: store.DriverOverlay, Scope: store.ScopeGlobal, VNI: 4096,
		Bridge: "br-" + id[:12], ICC: true, Created: time.Now().UTC(),
		Subnets: []store.Subnet{{Subnet: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.1.1")}}}
	c.mu.Lock()
	c.networks[id] = n.Copy()
	c.mu.Unlock()
	for _, m := range ms {
		if err := m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutNetwork(n.Copy()) }); err != nil {
			t.Fatal(err)
		}
		m.cfg.Kernel.(*fakeKernel).links[n.Bridge] = "bridge"
	}
	return n
}

// localClaims lists the claims m's store says it holds, as fakeCluster.claimed words them.
func localClaims(m *Manager, host string) []string {
	snap := m.cfg.Store.Snapshot()
	var out []string
	for _, n := range snap.Networks() {
		for _, c := range claimsOf(snap, snap.NetworkEndpoints(n.ID)) {
			out = append(out, c.netID+"/"+c.addr.String()+" "+host+" "+c.epID)
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestClaimsTwoHosts: 50 sandboxes on each of two hosts, created interleaved on one overlay
// network while neither host's mirror knows the other's (the worst case: every candidate of
// B's local IPAM was A's a moment before), get 100 distinct addresses, and the cluster holds
// exactly their claims. A refused candidate moves on, with the MAC derived from the address
// it gets.
func TestClaimsTwoHosts(t *testing.T) {
	c := newFakeCluster()
	a, _ := newClusterManager(t, c, "A", "192.0.2.1")
	b, _ := newClusterManager(t, c, "B", "192.0.2.2")
	putOverlay(t, c, a, b)
	seen := map[netip.Addr]string{}
	for i := 0; i < 50; i++ {
		for _, h := range []struct {
			m    *Manager
			name string
		}{{a, "A"}, {b, "B"}} {
			name := fmt.Sprintf("%s%d", strings.ToLower(h.name), i)
			_, ep := mustSandbox(t, h.m, api.SandboxCreate{Name: name, Networks: []string{"ov"}})
			if o, dup := seen[ep.IPv4]; dup {
				t.Fatalf("%s got %s, already %s's", name, ep.IPv4, o)
			}
			seen[ep.IPv4] = name
			if want := macFromIPv4(ep.IPv4).String(); ep.MAC != want {
				t.Errorf("%s: MAC %s for %s; want %s", name, ep.MAC, ep.IPv4, want)
			}
		}
	}
	if got := seen[netip.MustParseAddr("10.0.1.2")]; got != "a0" {
		t.Errorf("10.0.1.2 went to %q; want a0 (B's first candidate, taken by A, moved on)", got)
	}
	if len(seen) != 100 {
		t.Errorf("%d distinct addresses; want 100", len(seen))
	}
	want := append(localClaims(a, "A"), localClaims(b, "B")...)
	if got := c.claimed(); len(got) != 100 || !sameSet(got, want) {
		t.Errorf("cluster claims (%d) = %v\nwant the endpoints' (%d) %v", len(got), got, len(want), want)
	}
}

// TestClaimStaticTaken: --ip held by another host is the one-line error naming it, and
// nothing changes, here or in the cluster.
func TestClaimStaticTaken(t *testing.T) {
	c := newFakeCluster()
	a, _ := newClusterManager(t, c, "A", "192.0.2.1")
	b, kb := newClusterManager(t, c, "B", "192.0.2.2")
	putOverlay(t, c, a, b)
	mustSandbox(t, a, api.SandboxCreate{Name: "web", Networks: []string{"ov"}, IPv4: "10.0.1.5"})
	claims, before := c.claimed(), worldState(t, b, kb)
	_, err := b.CreateSandbox(t.Context(), api.SandboxCreate{Name: "db", Networks: []string{"ov"}, IPv4: "10.0.1.5"})
	if got, want := fmt.Sprint(err), `invalid ip "10.0.1.5": in use by host A`; got != want {
		t.Errorf("err = %s; want %s", got, want)
	}
	if after := worldState(t, b, kb); after != before {
		t.Errorf("the world changed:\n%s", lineDiff(after, before))
	}
	if got := c.claimed(); !slices.Equal(got, claims) {
		t.Errorf("claims = %v; want %v", got, claims)
	}
	// A static address the mirror already knows is refused by local IPAM, naming the holder.
	putRemote(t, b, "A", "cache", "10.0.1.9")
	_, err = b.CreateSandbox(t.Context(), api.SandboxCreate{Name: "db", Networks: []string{"ov"}, IPv4: "10.0.1.9"})
	if got, want := fmt.Sprint(err), `invalid ip "10.0.1.9": address already in use by sandbox cache on host A`; got != want {
		t.Errorf("err = %s; want %s", got, want)
	}
}

// putRemote mirrors a remote endpoint of host's sandbox name on "ov" into m's store, with
// its address record, as ApplyRemote does.
func putRemote(t *testing.T, m *Manager, host, name, ip string) *store.Endpoint {
	t.Helper()
	n, err := m.cfg.Store.Snapshot().NetworkByName("ov")
	if err != nil {
		t.Fatal(err)
	}
	ep := &store.Endpoint{ID: newID(), NetworkID: n.ID, SandboxID: newID(), IfName: "eth0",
		IPv4: netip.MustParseAddr(ip), Host: host, HostAddr: netip.MustParseAddr("192.0.2.1"), SandboxName: name,
		DNSNames: []string{name}}
	ep.MAC = macFromIPv4(ep.IPv4).String()
	err = m.cfg.Store.Update(func(tx *store.Tx) error {
		if err := tx.PutAddress(&store.Address{NetworkID: n.ID, Addr: ep.IPv4, Owner: ep.ID}); err != nil {
			return err
		}
		return tx.PutEndpoint(ep)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestClaimClusterDown: with the cluster store unreachable a create on a global network
// fails with nothing made; one on a local network does not need it.
func TestClaimClusterDown(t *testing.T) {
	c := newFakeCluster()
	m, k := newClusterManager(t, c, "A", "192.0.2.1")
	putOverlay(t, c, m)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	c.mu.Lock()
	c.down = true
	c.mu.Unlock()
	before := worldState(t, m, k)
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "x", Networks: []string{"app", "ov"}})
	if s := fmt.Sprint(err); !strings.HasPrefix(s, "create sandbox x: ") || !strings.Contains(s, "cluster store unreachable") {
		t.Errorf("err = %v; want create sandbox x: ... cluster store unreachable ...", err)
	}
	if after := worldState(t, m, k); after != before {
		t.Errorf("the world changed:\n%s", lineDiff(after, before))
	}
	if got := c.claimed(); len(got) != 0 {
		t.Errorf("claims = %v; want none", got)
	}
	mustSandbox(t, m, api.SandboxCreate{Name: "y", Networks: []string{"app"}})
}

// TestCancelCreateOverlay: a create on an overlay network cancelled during any kernel step
// leaves nothing, its address claim included; the uncancelled run keeps exactly its claim.
func TestCancelCreateOverlay(t *testing.T) {
	var c *fakeCluster
	setup := func(t *testing.T) (*Manager, *fakeKernel) {
		c = newFakeCluster()
		m, k := newClusterManager(t, c, "A", "192.0.2.1")
		putOverlay(t, c, m)
		mustNetwork(t, m, api.NetworkCreate{Name: "app"})
		return m, k
	}
	cancelAtEachStep(t, setup, func(ctx context.Context, m *Manager) error {
		_, err := m.CreateSandbox(ctx, api.SandboxCreate{Name: "web", Networks: []string{"ov", "app"}})
		got, want := c.claimed(), localClaims(m, "A")
		if err != nil && len(got) != 0 || err == nil && (len(got) != 1 || !sameSet(got, want)) {
			t.Errorf("create (err %v): claims %v; want %v", err, got, want)
		}
		return err
	})
}

// TestClaimReleased: disconnect and sandbox rm release the endpoint's claims; connect
// claims (and a connect refused by the cluster claims nothing).
func TestClaimReleased(t *testing.T) {
	c := newFakeCluster()
	m, _ := newClusterManager(t, c, "A", "192.0.2.1")
	putOverlay(t, c, m)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	c.mu.Lock()
	c.failOn = "ClaimAddr"
	c.mu.Unlock()
	if err := m.Connect(t.Context(), api.NetworkConnect{Network: "ov", Sandbox: "web"}); err == nil {
		t.Fatal("connect with the claim failing succeeded")
	}
	if got := c.claimed(); len(got) != 0 {
		t.Fatalf("claims after a failed connect = %v; want none", got)
	}
	if err := m.Connect(t.Context(), api.NetworkConnect{Network: "ov", Sandbox: "web", Aliases: []string{"www"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.claimed(), localClaims(m, "A"); len(got) != 1 || !sameSet(got, want) {
		t.Fatalf("claims after connect = %v; want %v", got, want)
	}
	if err := m.Disconnect(t.Context(), api.NetworkDisconnect{Network: "ov", Sandbox: "web"}); err != nil {
		t.Fatal(err)
	}
	if got := c.claimed(); len(got) != 0 {
		t.Errorf("claims after disconnect = %v; want none", got)
	}
	mustSandbox(t, m, api.SandboxCreate{Name: "db", Networks: []string{"ov"}})
	if got := c.claimed(); len(got) != 1 {
		t.Fatalf("claims after create = %v; want one", got)
	}
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "db", Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := c.claimed(); len(got) != 0 {
		t.Errorf("claims after sandbox rm = %v; want none", got)
	}
}

// TestReconcileClaims: a claim no endpoint holds (a create killed mid-way) is released, a
// local endpoint's missing claim is made again, another host's claims are not touched.
func TestReconcileClaims(t *testing.T) {
	c := newFakeCluster()
	a, _ := newClusterManager(t, c, "A", "192.0.2.1")
	b, _ := newClusterManager(t, c, "B", "192.0.2.2")
	n := putOverlay(t, c, a, b)
	mustSandbox(t, a, api.SandboxCreate{Name: "web", Networks: []string{"ov"}})
	_, db := mustSandbox(t, a, api.SandboxCreate{Name: "db", Networks: []string{"ov"}})
	mustSandbox(t, b, api.SandboxCreate{Name: "other", Networks: []string{"ov"}})
	want := c.claimed()
	// A create killed after its claim: nothing holds 10.0.1.40.
	if err := a.cfg.Cluster.ClaimAddr(t.Context(), n.ID, netip.MustParseAddr("10.0.1.40"), newID()); err != nil {
		t.Fatal(err)
	}
	// db's claim lost.
	c.mu.Lock()
	delete(c.claims, n.ID+"/"+db.IPv4.String())
	c.mu.Unlock()
	if err := a.ReconcileClaims(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := c.claimed(); !slices.Equal(got, want) {
		t.Errorf("claims after reconcile = %v\nwant %v", got, want)
	}
	c.mu.Lock()
	c.down = true
	c.mu.Unlock()
	if err := a.ReconcileClaims(t.Context()); err == nil || !strings.Contains(err.Error(), "cluster store unreachable") {
		t.Errorf("reconcile with the cluster down: %v; want cluster store unreachable", err)
	}
}

// TestRemoteEndpointsUntouched: remote endpoints (no sandbox record, no veth) on a network
// sit through every local change around them: creates next to them, links to them, connect,
// disconnect, rename (even to a remote sandbox's name), rm and the reaper. Their records
// and addresses stay as the mirror put them.
func TestRemoteEndpointsUntouched(t *testing.T) {
	c := newFakeCluster()
	m, _ := newClusterManager(t, c, "A", "192.0.2.1")
	putOverlay(t, c, m)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	cache := putRemote(t, m, "B", "cache", "10.0.1.2")
	other := putRemote(t, m, "B", "other", "10.0.1.3")
	remoteState := func() string {
		snap := m.cfg.Store.Snapshot()
		var b strings.Builder
		for _, id := range []string{cache.ID, other.ID} {
			ep, err := snap.Endpoint(id)
			fmt.Fprintf(&b, "%+v %v\n", ep, err)
		}
		n, _ := snap.NetworkByName("ov")
		for _, a := range snap.NetworkAddresses(n.ID) {
			if a.Owner == cache.ID || a.Owner == other.ID {
				fmt.Fprintf(&b, "%+v\n", *a)
			}
		}
		return b.String()
	}
	before := remoteState()
	_, web := mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"ov"}, Links: []string{"cache:c"},
		Publish: []string{"8080:80"}})
	if got := web.IPv4.String(); got != "10.0.1.4" {
		t.Errorf("web got %s; want 10.0.1.4 (local IPAM skips the mirrored addresses)", got)
	}
	mustSandbox(t, m, api.SandboxCreate{Name: "db", Networks: []string{"app"}})
	steps := []struct {
		name string
		do   func() error
	}{
		{"connect", func() error { return m.Connect(t.Context(), api.NetworkConnect{Network: "ov", Sandbox: "db"}) }},
		{"rename", func() error { return m.RenameSandbox(t.Context(), api.SandboxRename{Sandbox: "web", Name: "other"}) }},
		{"disconnect", func() error { return m.Disconnect(t.Context(), api.NetworkDisconnect{Network: "ov", Sandbox: "db"}) }},
		{"rm", func() error { return m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "other", Force: true}) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		m.Settle()
		if after := remoteState(); after != before {
			t.Errorf("%s changed the remote endpoints:\n%s", s.name, lineDiff(after, before))
		}
	}
	if got := c.claimed(); len(got) != 0 {
		t.Errorf("claims left = %v; want none", got)
	}
}

// TestClaimNetworkFull: when every address is held by another host (which A's mirror does
// not know yet), A's create gives up after its tries, claims nothing and leaves nothing.
func TestClaimNetworkFull(t *testing.T) {
	c := newFakeCluster()
	a, k := newClusterManager(t, c, "A", "192.0.2.1")
	n := putOverlay(t, c, a)
	b := c.host("B", "192.0.2.2")
	for i := 2; i < 255; i++ {
		if err := b.ClaimAddr(t.Context(), n.ID, netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), newID()); err != nil {
			t.Fatal(err)
		}
	}
	claims, before := c.claimed(), worldState(t, a, k)
	_, err := a.CreateSandbox(t.Context(), api.SandboxCreate{Name: "web", Networks: []string{"ov"}})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "64 addresses tried") {
		t.Errorf("err = %v; want a conflict after 64 tries", err)
	}
	if after := worldState(t, a, k); after != before {
		t.Errorf("the world changed:\n%s", lineDiff(after, before))
	}
	if got := c.claimed(); !slices.Equal(got, claims) {
		t.Errorf("claims changed: %d, were %d", len(got), len(claims))
	}
}
