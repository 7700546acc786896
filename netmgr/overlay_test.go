package netmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"berth/api"
	"berth/store"
)

// clusterHost is one host of a test cluster: its own store, fake kernel and observer, and
// its view of the shared fakeCluster.
type clusterHost struct {
	m   *Manager
	k   *fakeKernel
	h   *fakeClusterHost
	obs *recorder
}

// newClusterHost returns a restored Manager for host id (underlay address addr) of c.
func newClusterHost(t testing.TB, c *fakeCluster, id, addr string) *clusterHost {
	t.Helper()
	h := c.host(id, addr)
	return startHost(t, store.NewMemory(), newFakeKernel(), h)
}

// startHost starts a Manager over st and k with cluster view h (or none) and restores it.
func startHost(t testing.TB, st *store.Store, k *fakeKernel, h *fakeClusterHost) *clusterHost {
	t.Helper()
	dir := t.TempDir()
	obs := &recorder{}
	cfg := Config{Store: st, Kernel: k, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NetNSDir: dir + "/netns", FilesDir: dir + "/etc", RunDir: dir + "/state", Observer: obs}
	if h != nil {
		cfg.Cluster = h
	}
	m := New(cfg)
	obs.m = m
	if err := m.Restore(t.Context()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return &clusterHost{m: m, k: k, h: h, obs: obs}
}

// sync applies the full update of the cluster's current state, as the mirror does at start.
func (ch *clusterHost) sync(t testing.TB, c *fakeCluster) {
	t.Helper()
	if err := ch.m.ApplyRemote(t.Context(), c.update(ch.h.id)); err != nil {
		t.Fatalf("ApplyRemote on %s: %v", ch.h.id, err)
	}
}

func (ch *clusterHost) create(t testing.TB, req api.NetworkCreate) *store.Network {
	t.Helper()
	n, err := ch.m.CreateNetwork(t.Context(), req)
	if err != nil {
		t.Fatalf("CreateNetwork %s on %s: %v", req.Name, ch.h.id, err)
	}
	return n
}

// devices lists the fake kernel's bridges and VXLAN devices, as "kind name".
func (k *fakeKernel) devices() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for name, kind := range k.links {
		if kind == "bridge" || kind == "vxlan" {
			out = append(out, kind+" "+name)
		}
	}
	sort.Strings(out)
	return out
}

// remoteEP is an endpoint of sandbox name on host (underlay hostAddr), as the publisher
// of that host puts it in the cluster store.
func remoteEP(netID, host, hostAddr, name, ip string) *store.Endpoint {
	a := netip.MustParseAddr(ip)
	id := fmt.Sprintf("%x", sha(name+"@"+host+"/"+netID))
	return &store.Endpoint{ID: id, NetworkID: netID, SandboxID: fmt.Sprintf("%x", sha("sandbox "+name+"@"+host)),
		IfName: "eth0", MAC: macFromIPv4(a).String(), IPv4: a, DNSNames: []string{name},
		Host: host, HostAddr: netip.MustParseAddr(hostAddr), SandboxName: name}
}

func sha(s string) [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = byte(i)
	}
	for i, c := range []byte(s) {
		b[i%32] = b[i%32]*31 + c
	}
	return b
}

// putLocalEndpoint records a sandbox of this host with an endpoint at ip on network n,
// as a create by the sandbox code would (no kernel work: the tests here need the records).
func putLocalEndpoint(t testing.TB, m *Manager, n *store.Network, name, ip string) *store.Endpoint {
	t.Helper()
	sb := &store.Sandbox{ID: newID(), Name: name, Mode: store.ModeBridge, State: store.StateReady}
	a := netip.MustParseAddr(ip)
	ep := &store.Endpoint{ID: newID(), NetworkID: n.ID, SandboxID: sb.ID, IfName: "eth0",
		MAC: macFromIPv4(a).String(), IPv4: a, DNSNames: []string{name}}
	ep.HostVeth = store.VethName(ep.ID)
	err := m.cfg.Store.Update(func(tx *store.Tx) error {
		if err := tx.PutSandbox(sb); err != nil {
			return err
		}
		if err := tx.PutEndpoint(ep); err != nil {
			return err
		}
		return tx.PutAddress(&store.Address{NetworkID: n.ID, Addr: a, Owner: ep.ID})
	})
	if err != nil {
		t.Fatalf("record local endpoint %s: %v", name, err)
	}
	return ep
}

// remoteState lists the remote endpoints in m's store with their addresses' owners, as
// "sandbox@host ip owner=self|other", sorted.
func remoteState(m *Manager, netID string) []string {
	snap := m.cfg.Store.Snapshot()
	var out []string
	for _, ep := range snap.NetworkEndpoints(netID) {
		if !ep.Remote() {
			continue
		}
		owner := "none"
		if a, err := snap.Address(netID, ep.IPv4); err == nil {
			owner = "other"
			if a.Owner == ep.ID {
				owner = "self"
			}
		}
		out = append(out, fmt.Sprintf("%s@%s %s %s owner=%s", ep.SandboxName, ep.Host, ep.IPv4, ep.MAC, owner))
	}
	sort.Strings(out)
	return out
}

func peerLine(ip, host string) string {
	a := netip.MustParseAddr(ip)
	return fmt.Sprintf("%s [%s]@%s", macFromIPv4(a), a, host)
}

func TestOverlayValidate(t *testing.T) {
	noCluster, _ := newTestManager(t)
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	for _, tc := range []struct {
		name string
		m    *Manager
		req  api.NetworkCreate
		want string
	}{
		{"no cluster store", noCluster, api.NetworkCreate{Name: "ov", Driver: "overlay"},
			`invalid driver "overlay": needs a cluster store (berth daemon --cluster-store etcd://...)`},
		{"ipv6", a.m, api.NetworkCreate{Name: "ov", Driver: "overlay", IPv6: true},
			`invalid ipv6 "true": overlay networks are IPv4-only`},
		{"ipv6 without cluster", noCluster, api.NetworkCreate{Name: "ov", Driver: "overlay", IPv6: true},
			`invalid ipv6 "true": overlay networks are IPv4-only`},
		{"bridge name", a.m, api.NetworkCreate{Name: "ov", Driver: "overlay", Options: map[string]string{OptBridgeName: "ovbr"}},
			`invalid opt "com.docker.network.bridge.name=ovbr": not an option of the overlay driver`},
		{"other driver", a.m, api.NetworkCreate{Name: "ov", Driver: "weave"},
			`invalid driver "weave": only the bridge, overlay, macvlan and ipvlan drivers are supported`},
		{"bad subnet", a.m, api.NetworkCreate{Name: "ov", Driver: "overlay", Subnets: []string{"10.9.0.0/31"}},
			`invalid subnet "10.9.0.0/31": too small: a /31 leaves no address for endpoints (at most /30)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.CreateNetwork(t.Context(), tc.req)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v; want %s", err, tc.want)
			}
		})
	}
	if got := c.update("B").Networks; len(got) != 0 {
		t.Errorf("cluster has %d networks after refused creates; want 0", len(got))
	}
}

// TestOverlayCreateMirrors: a network created on A is the same record on B once B's mirror
// applies the cluster's state, with its bridge and VXLAN device on each host.
func TestOverlayCreateMirrors(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay", Internal: true, Labels: map[string]string{"k": "v"}})
	if n.Scope != store.ScopeGlobal || n.Driver != store.DriverOverlay || n.VNI != 4096 || n.MTU != fakeUnderlayMTU-50 {
		t.Errorf("record: scope %q driver %q vni %d mtu %d; want global overlay 4096 %d", n.Scope, n.Driver, n.VNI, n.MTU, fakeUnderlayMTU-50)
	}
	if want := []store.Subnet{{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}}; !reflect.DeepEqual(n.Subnets, want) {
		t.Errorf("subnets %v; want %v", n.Subnets, want)
	}
	dev := VxlanName(n.VNI, n.ID)
	br := "br-" + n.ID[:12]
	wantDevs := []string{"bridge " + br, "vxlan " + dev}
	if got := a.k.devices(); !reflect.DeepEqual(got, append([]string{"bridge berth0"}, wantDevs...)) {
		t.Errorf("A's devices %v", got)
	}
	if got := a.k.vxlans[dev]; got != (VxlanSpec{Name: dev, VNI: 4096, Local: netip.MustParseAddr("192.0.2.1"), Bridge: br}) {
		t.Errorf("A's vxlan spec %+v", got)
	}
	a.obs.take()

	b.sync(t, c)
	got, err := b.m.cfg.Store.Snapshot().NetworkByName("ov")
	if err != nil {
		t.Fatalf("B has no ov: %v", err)
	}
	if got.ID != n.ID || got.VNI != n.VNI || got.Scope != store.ScopeGlobal || !reflect.DeepEqual(got.Subnets, n.Subnets) ||
		!got.Internal || got.Labels["k"] != "v" || got.Bridge != br || got.MTU != n.MTU {
		t.Errorf("B's record %+v; want A's %+v", got, n)
	}
	if got := b.k.devices(); !reflect.DeepEqual(got, append([]string{"bridge berth0"}, wantDevs...)) {
		t.Errorf("B's devices %v", got)
	}
	if got := b.k.vxlans[dev].Local; got != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("B's vxlan local %s; want 192.0.2.2", got)
	}
	if got := b.obs.take(); !reflect.DeepEqual(got, []string{"network create network=ov"}) {
		t.Errorf("B's observer %q", got)
	}
	// A's own mirror brings A nothing new; B applying the same state again neither.
	a.sync(t, c)
	b.sync(t, c)
	if got := append(a.obs.take(), b.obs.take()...); len(got) != 0 {
		t.Errorf("observers after unchanged updates: %q", got)
	}
	if got, _ := a.m.cfg.Store.Snapshot().Network(n.ID); got != n {
		t.Errorf("A's record was rewritten by its own mirror: %+v", got)
	}

	// The next subnet skips the one taken (mirrored on B) and the routes.
	b.k.routes = []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}
	n2 := b.create(t, api.NetworkCreate{Name: "ov2", Driver: "overlay"})
	if got := n2.Subnets[0].Subnet.String(); got != "10.0.2.0/24" {
		t.Errorf("B's second overlay subnet %s; want 10.0.2.0/24", got)
	}
	// MTU: the one asked for when it fits in the VXLAN device's, else the device's. (A
	// mirrors ov2 first: else it picks ov2's subnet, which the cluster store refuses.)
	a.sync(t, c)
	for _, tc := range []struct {
		opt  string
		want int
	}{{"1400", 1400}, {"9000", fakeUnderlayMTU - 50}} {
		n := a.create(t, api.NetworkCreate{Name: "mtu" + tc.opt, Driver: "overlay", Options: map[string]string{OptMTU: tc.opt}})
		if n.MTU != tc.want {
			t.Errorf("MTU option %s: record MTU %d; want %d", tc.opt, n.MTU, tc.want)
		}
	}
}

func TestOverlayConflicts(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	// B has not mirrored ov yet: the cluster store refuses the name.
	_, err := b.m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "OV", Driver: "overlay", Subnets: []string{"10.5.0.0/24"}})
	if !errors.Is(err, store.ErrConflict) || err.Error() != `create network "OV": global network name OV is taken: conflict` {
		t.Errorf("same name from B: %v", err)
	}
	// A local network's name here is refused before the cluster is asked.
	b.create(t, api.NetworkCreate{Name: "loc"})
	if _, err := b.m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "loc", Driver: "overlay"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("overlay with a local network's name: %v", err)
	}
	// A creates a global "loc": B keeps its local one and skips the global one.
	g := a.create(t, api.NetworkCreate{Name: "loc", Driver: "overlay"})
	b.sync(t, c)
	snap := b.m.cfg.Store.Snapshot()
	if l, err := snap.NetworkByName("loc"); err != nil || l.Global() {
		t.Errorf("B's loc: %+v %v; want the local one", l, err)
	}
	if _, err := snap.Network(g.ID); err == nil {
		t.Errorf("B mirrored the global loc over its local one")
	}
	if _, err := snap.NetworkByName("ov"); err != nil {
		t.Errorf("B did not mirror ov: %v", err)
	}
	// A local create may not take a mirrored global network's name either.
	if _, err := b.m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "ov"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("local network with a global one's name: %v", err)
	}
}

// TestOverlayClusterDown: with the cluster store unreachable a create fails, and nothing
// changes: records, kernel, cluster.
func TestOverlayClusterDown(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	nets, devs := len(a.m.cfg.Store.Snapshot().Networks()), a.k.devices()
	c.down = true
	_, err := a.m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "ov", Driver: "overlay"})
	if !errors.Is(err, ErrClusterUnreachable) || !strings.Contains(err.Error(), "cluster store unreachable") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("create with the cluster down: %v", err)
	}
	if got := len(a.m.cfg.Store.Snapshot().Networks()); got != nets {
		t.Errorf("networks %d; want %d", got, nets)
	}
	if got := a.k.devices(); !reflect.DeepEqual(got, devs) {
		t.Errorf("devices %v; want %v", got, devs)
	}
	c.down = false
	if got := len(c.update("A").Networks); got != 0 {
		t.Errorf("cluster networks %d; want 0", got)
	}
	if got := a.obs.take(); len(got) != 0 {
		t.Errorf("observer: %q", got)
	}
}

// TestOverlayCreateUndo: a local failure after the cluster's create removes the network
// from the cluster store too, and leaves nothing here.
func TestOverlayCreateUndo(t *testing.T) {
	for _, op := range []string{"EnsureBridge", "EnsureVxlan"} {
		t.Run(op, func(t *testing.T) {
			c := newFakeCluster()
			a := newClusterHost(t, c, "A", "192.0.2.1")
			devs := a.k.devices()
			a.k.failOn = op
			_, err := a.m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "ov", Driver: "overlay"})
			if err == nil || !strings.Contains(err.Error(), "fake "+op+" failure") {
				t.Fatalf("create: %v; want the %s failure", err, op)
			}
			if got := len(c.update("A").Networks); got != 0 {
				t.Errorf("cluster keeps %d networks after the undo", got)
			}
			if _, err := a.m.cfg.Store.Snapshot().NetworkByName("ov"); err == nil {
				t.Errorf("record kept")
			}
			if got := a.k.devices(); !reflect.DeepEqual(got, devs) {
				t.Errorf("devices %v; want %v", got, devs)
			}
			// The name is free again, here and in the cluster.
			a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
		})
	}
}

// TestRemoteEndpoints: remote endpoints put, changed, removed and replaced by a full
// update make exactly the records, addresses and peers the cluster holds.
func TestRemoteEndpoints(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	b.sync(t, c)
	b.obs.take()
	dev := VxlanName(n.VNI, n.ID)
	web := remoteEP(n.ID, "A", "192.0.2.1", "web", "10.0.0.2")
	db := remoteEP(n.ID, "A", "192.0.2.1", "db", "10.0.0.3")
	apply := func(u RemoteUpdate) {
		t.Helper()
		if err := b.m.ApplyRemote(t.Context(), u); err != nil {
			t.Fatalf("ApplyRemote: %v", err)
		}
	}
	check := func(step string, wantRecs, wantPeers []string) {
		t.Helper()
		if got := remoteState(b.m, n.ID); !slices.Equal(got, wantRecs) {
			t.Errorf("%s: records %q; want %q", step, got, wantRecs)
		}
		if got := b.k.vxlanPeers(dev); !slices.Equal(got, wantPeers) {
			t.Errorf("%s: peers %q; want %q", step, got, wantPeers)
		}
	}

	apply(RemoteUpdate{Endpoints: []*store.Endpoint{web, db}})
	check("put", []string{"db@A 10.0.0.3 02:42:0a:00:00:03 owner=self", "web@A 10.0.0.2 02:42:0a:00:00:02 owner=self"},
		[]string{peerLine("10.0.0.2", "192.0.2.1"), peerLine("10.0.0.3", "192.0.2.1")})
	if got, err := b.m.cfg.Store.Snapshot().Endpoint(web.ID); err != nil || got.Host != "A" || got.SandboxName != "web" || got.HostVeth != "" {
		t.Errorf("web's record %+v, %v", got, err)
	}

	// web moves to host C with another address (and so another MAC).
	moved := remoteEP(n.ID, "C", "192.0.2.3", "web", "10.0.0.9")
	moved.ID, moved.SandboxID = web.ID, web.SandboxID
	apply(RemoteUpdate{Endpoints: []*store.Endpoint{moved}})
	check("changed", []string{"db@A 10.0.0.3 02:42:0a:00:00:03 owner=self", "web@C 10.0.0.9 02:42:0a:00:00:09 owner=self"},
		[]string{peerLine("10.0.0.3", "192.0.2.1"), peerLine("10.0.0.9", "192.0.2.3")})
	if _, err := b.m.cfg.Store.Snapshot().Address(n.ID, web.IPv4); err == nil {
		t.Errorf("web's old address is still held")
	}

	apply(RemoteUpdate{RemovedEndpoints: []string{db.ID}})
	check("removed", []string{"web@C 10.0.0.9 02:42:0a:00:00:09 owner=self"}, []string{peerLine("10.0.0.9", "192.0.2.3")})

	// A full update lists app and cache only: web goes; a stray peer goes too.
	app := remoteEP(n.ID, "A", "192.0.2.1", "app", "10.0.0.4")
	cache := remoteEP(n.ID, "C", "192.0.2.3", "cache", "10.0.0.5")
	c.endpoints = map[string]*store.Endpoint{app.ID: app, cache.ID: cache}
	b.k.peers[dev]["02:42:0a:00:00:63"] = VxlanPeer{MAC: macFromIPv4(netip.MustParseAddr("10.0.0.99")), Host: netip.MustParseAddr("192.0.2.9")}
	b.sync(t, c)
	check("full", []string{"app@A 10.0.0.4 02:42:0a:00:00:04 owner=self", "cache@C 10.0.0.5 02:42:0a:00:00:05 owner=self"},
		[]string{peerLine("10.0.0.4", "192.0.2.1"), peerLine("10.0.0.5", "192.0.2.3")})
	if got := b.obs.take(); len(got) != 0 {
		t.Errorf("observer heard endpoint changes: %q", got)
	}

	// Collisions with this host's endpoints are skipped; the rest still applies.
	mine := putLocalEndpoint(t, b.m, n, "mine", "10.0.0.6")
	clash := remoteEP(n.ID, "A", "192.0.2.1", "clash", "10.0.0.6")
	ownHost := remoteEP(n.ID, "B", "192.0.2.2", "echo", "10.0.0.7")
	macClash := remoteEP(n.ID, "C", "192.0.2.3", "twin", "10.0.0.8")
	macClash.MAC = mine.MAC
	late := remoteEP(n.ID, "C", "192.0.2.3", "late", "10.0.0.10")
	apply(RemoteUpdate{Endpoints: []*store.Endpoint{clash, ownHost, macClash, late}})
	check("collisions", []string{"app@A 10.0.0.4 02:42:0a:00:00:04 owner=self", "cache@C 10.0.0.5 02:42:0a:00:00:05 owner=self",
		"late@C 10.0.0.10 02:42:0a:00:00:0a owner=self"},
		[]string{peerLine("10.0.0.4", "192.0.2.1"), peerLine("10.0.0.5", "192.0.2.3"), peerLine("10.0.0.10", "192.0.2.3")})
	if a, err := b.m.cfg.Store.Snapshot().Address(n.ID, mine.IPv4); err != nil || a.Owner != mine.ID {
		t.Errorf("local address: %+v %v; want held by the local endpoint", a, err)
	}
	// Two remote endpoints on one address: the first listed holds it.
	twin := remoteEP(n.ID, "C", "192.0.2.3", "twin2", "10.0.0.4")
	twin.MAC = "02:42:0a:00:00:44"
	apply(RemoteUpdate{Endpoints: []*store.Endpoint{twin}})
	if got := remoteState(b.m, n.ID); len(got) != 3 {
		t.Errorf("after a remote clash: %q", got)
	}
	// Endpoints of unknown networks are not recorded.
	stray := remoteEP(strings.Repeat("ab", 32), "A", "192.0.2.1", "stray", "10.7.0.2")
	apply(RemoteUpdate{Endpoints: []*store.Endpoint{stray}})
	if _, err := b.m.cfg.Store.Snapshot().Endpoint(stray.ID); err == nil {
		t.Errorf("endpoint of an unknown network recorded")
	}
}

// TestOverlayRemove: rm is refused while the store holds an endpoint on the network, the
// other host's too; once removed in the cluster, the other host drops it with its devices.
func TestOverlayRemove(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	b.sync(t, c)
	web := remoteEP(n.ID, "A", "192.0.2.1", "web", "10.0.0.2")
	c.endpoints[web.ID] = web
	b.sync(t, c)
	b.obs.take()
	err := b.m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "ov"})
	if !errors.Is(err, store.ErrConflict) || err.Error() != "network ov has active endpoints ([web@A]): conflict" {
		t.Errorf("rm with a remote endpoint: %v", err)
	}
	// A has no endpoint in its store, but the cluster store knows of its published one.
	if err := a.m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "ov"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("rm on A with an endpoint published: %v", err)
	}
	if _, err := a.m.cfg.Store.Snapshot().Network(n.ID); err != nil {
		t.Errorf("A dropped its record after a refused rm: %v", err)
	}
	delete(c.endpoints, web.ID)
	b.sync(t, c)
	if err := b.m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "ov"}); err != nil {
		t.Fatalf("rm on B: %v", err)
	}
	if got := b.k.devices(); !slices.Equal(got, []string{"bridge berth0"}) {
		t.Errorf("B's devices after rm: %v", got)
	}
	if got := len(c.update("A").Networks); got != 0 {
		t.Errorf("cluster keeps the network")
	}
	a.obs.take()
	a.sync(t, c)
	if _, err := a.m.cfg.Store.Snapshot().Network(n.ID); err == nil {
		t.Errorf("A kept the removed network")
	}
	if got := a.k.devices(); !slices.Equal(got, []string{"bridge berth0"}) {
		t.Errorf("A's devices: %v", got)
	}
	if got := a.obs.take(); !slices.Equal(got, []string{"network rm network=ov"}) {
		t.Errorf("A's observer: %q", got)
	}
}

// TestApplyRemoteKeepsLocalEndpoints: a global network removed from the cluster while
// this host still has an endpoint on it stays; its remote endpoints follow the cluster.
func TestApplyRemoteKeepsLocalEndpoints(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	b.sync(t, c)
	putLocalEndpoint(t, b.m, n, "mine", "10.0.0.9")
	b.obs.take()
	if err := b.m.ApplyRemote(t.Context(), RemoteUpdate{RemovedNetworks: []string{n.ID}}); err != nil {
		t.Fatalf("ApplyRemote: %v", err)
	}
	if _, err := b.m.cfg.Store.Snapshot().Network(n.ID); err != nil {
		t.Errorf("network with a local endpoint dropped: %v", err)
	}
	if got := b.k.devices(); len(got) != 3 {
		t.Errorf("devices %v", got)
	}
	if got := b.obs.take(); len(got) != 0 {
		t.Errorf("observer: %q", got)
	}
}

// TestOverlayPruneAndFirewall: prune leaves global networks alone; the firewall treats an
// overlay network as a bridge network.
func TestOverlayPruneAndFirewall(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	a.create(t, api.NetworkCreate{Name: "loc"})
	got, err := a.m.PruneNetworks(t.Context(), nil)
	if err != nil || !slices.Equal(got, []string{"loc"}) {
		t.Errorf("prune: %v %v; want [loc]", got, err)
	}
	st := firewallState(a.m.cfg.Store.Snapshot())
	var bridges []string
	for _, fn := range st.Networks {
		bridges = append(bridges, fn.Bridge)
		if fn.Bridge == n.Bridge && (!fn.Masquerade || !fn.ICC || len(fn.Subnets) != 1) {
			t.Errorf("overlay's firewall network %+v", fn)
		}
	}
	if !slices.Contains(bridges, n.Bridge) {
		t.Errorf("firewall networks %v lack the overlay's bridge %s", bridges, n.Bridge)
	}
}

// TestOverlayRestore: after a reboot (an empty kernel) the overlay network's bridge, VXLAN
// device and peers come back from the store; without a cluster store only the bridge; an
// orphaned VXLAN device goes.
func TestOverlayRestore(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	web := remoteEP(n.ID, "A", "192.0.2.1", "web", "10.0.0.2")
	c.endpoints[web.ID] = web
	b.sync(t, c)
	dev := VxlanName(n.VNI, n.ID)
	wantPeers := []string{peerLine("10.0.0.2", "192.0.2.1")}

	k := newFakeKernel()
	k.links["vx-000abc-12345"] = "vxlan" // a network's that is gone
	k.vxlans["vx-000abc-12345"] = VxlanSpec{Name: "vx-000abc-12345"}
	k.links["vx-eth0"] = "device" // not berth's form
	r := startHost(t, b.m.cfg.Store, k, b.h)
	if got := k.devices(); !slices.Equal(got, []string{"bridge berth0", "bridge " + n.Bridge, "vxlan " + dev}) {
		t.Errorf("devices after restore: %v", got)
	}
	if got := k.vxlanPeers(dev); !slices.Equal(got, wantPeers) {
		t.Errorf("peers after restore: %q; want %q", got, wantPeers)
	}
	if k.links["vx-eth0"] != "device" {
		t.Errorf("restore deleted vx-eth0, not berth's")
	}
	if got := remoteState(r.m, n.ID); len(got) != 1 {
		t.Errorf("remote endpoints after restore: %q", got)
	}

	k2 := newFakeKernel()
	startHost(t, b.m.cfg.Store, k2, nil)
	if got := k2.devices(); !slices.Equal(got, []string{"bridge berth0", "bridge " + n.Bridge}) {
		t.Errorf("devices after restore without a cluster store: %v", got)
	}
}

// BenchmarkApplyRemoteFull10k measures a full update of 10,000 remote endpoints on one
// network: the first (all new) and one that changes nothing (a mirror's resync).
func BenchmarkApplyRemoteFull10k(b *testing.B) {
	c := newFakeCluster()
	a := newClusterHost(b, c, "A", "192.0.2.1")
	n := a.create(b, api.NetworkCreate{Name: "ov", Driver: "overlay", Subnets: []string{"10.0.0.0/16"}})
	for i := 0; i < 10000; i++ {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(2 + i/250), byte(2 + i%250)})
		ep := remoteEP(n.ID, "C", "192.0.2.3", fmt.Sprintf("sb%d", i), ip.String())
		c.endpoints[ep.ID] = ep
	}
	u := c.update("B")
	if len(u.Endpoints) != 10000 {
		b.Fatalf("%d endpoints; want 10000", len(u.Endpoints))
	}
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			h := newClusterHost(b, c, "B", "192.0.2.2")
			b.StartTimer()
			if err := h.m.ApplyRemote(b.Context(), u); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := len(h.k.vxlanPeers(VxlanName(n.VNI, n.ID))); got != 10000 {
				b.Fatalf("%d peers", got)
			}
			b.StartTimer()
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		h := newClusterHost(b, c, "B", "192.0.2.2")
		if err := h.m.ApplyRemote(b.Context(), u); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := h.m.ApplyRemote(b.Context(), u); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestApplyRemoteRecreatedName: one watch response can hold the removal of a global
// network and the create of another of the same name (rm then create, quickly): the new
// one replaces the old here, with its devices.
func TestApplyRemoteRecreatedName(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	old := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	b.sync(t, c)
	if err := a.m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "ov"}); err != nil {
		t.Fatal(err)
	}
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	b.obs.take()
	u := c.update("B")
	u.Full, u.RemovedNetworks = false, []string{old.ID}
	if err := b.m.ApplyRemote(t.Context(), u); err != nil {
		t.Fatalf("ApplyRemote: %v", err)
	}
	got, err := b.m.cfg.Store.Snapshot().NetworkByName("ov")
	if err != nil || got.ID != n.ID {
		t.Fatalf("B's ov: %+v %v; want the new one %s", got, err, store.ShortID(n.ID))
	}
	want := []string{"bridge berth0", "bridge " + n.Bridge, "vxlan " + VxlanName(n.VNI, n.ID)}
	if got := b.k.devices(); !slices.Equal(got, want) {
		t.Errorf("B's devices %v; want %v", got, want)
	}
	if got := b.obs.take(); !slices.Equal(got, []string{"network create network=ov", "network rm network=ov"}) &&
		!slices.Equal(got, []string{"network rm network=ov", "network create network=ov"}) {
		t.Errorf("B's observer: %q", got)
	}
}

// TestApplyRemoteNewAddressSameMAC: a remote endpoint whose address changes but not its
// MAC (--mac-address) leaves no neighbour entry for the old address.
func TestApplyRemoteNewAddressSameMAC(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	n := a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	b.sync(t, c)
	web := remoteEP(n.ID, "A", "192.0.2.1", "web", "10.0.0.2")
	web.MAC = "02:00:00:00:00:01"
	if err := b.m.ApplyRemote(t.Context(), RemoteUpdate{Endpoints: []*store.Endpoint{web}}); err != nil {
		t.Fatal(err)
	}
	moved := web.Copy()
	moved.IPv4 = netip.MustParseAddr("10.0.0.3")
	// The fake keys peers by MAC, the kernel its neighbour entries by address: what
	// removes the old one is a DeleteVxlanPeer before the new peer goes in.
	var ops []string
	b.k.done = func(op string) { ops = append(ops, op) }
	if err := b.m.ApplyRemote(t.Context(), RemoteUpdate{Endpoints: []*store.Endpoint{moved}}); err != nil {
		t.Fatal(err)
	}
	b.k.done = nil
	if want := []string{"DeleteVxlanPeer", "AddVxlanPeer"}; !slices.Equal(ops, want) {
		t.Errorf("kernel calls %q; want %q", ops, want)
	}
	if got, want := b.k.vxlanPeers(VxlanName(n.VNI, n.ID)), []string{"02:00:00:00:00:01 [10.0.0.3]@192.0.2.1"}; !slices.Equal(got, want) {
		t.Errorf("peers %q; want %q", got, want)
	}
}

// TestApplyRemoteCancelled: an update whose ctx is done changes nothing.
func TestApplyRemoteCancelled(t *testing.T) {
	c := newFakeCluster()
	a := newClusterHost(t, c, "A", "192.0.2.1")
	b := newClusterHost(t, c, "B", "192.0.2.2")
	a.create(t, api.NetworkCreate{Name: "ov", Driver: "overlay"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.m.ApplyRemote(ctx, c.update("B")); !errors.Is(err, context.Canceled) {
		t.Errorf("ApplyRemote with ctx done: %v", err)
	}
	if _, err := b.m.cfg.Store.Snapshot().NetworkByName("ov"); err == nil {
		t.Errorf("recorded with ctx done")
	}
}
