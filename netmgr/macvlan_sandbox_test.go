package netmgr

import (
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

// lanNet is the macvlan network the sandbox tests share: on eth0, with a gateway, a range
// and the host shim.
func lanNet(t *testing.T, m *Manager) *store.Network {
	t.Helper()
	req := onParentNet("lan", "macvlan", "192.168.50.0/24", "parent=eth0", "berth.host_shim=true")
	req.Gateways = []string{"192.168.50.254"}
	req.IPRanges = []string{"192.168.50.128/25"}
	return mustNetwork(t, m, req)
}

// TestSubIfSandboxLifecycle: a sandbox on a macvlan network gets a macvlan child of the
// parent (no veth), its addresses, a stable MAC, the default route via the gateway, the
// embedded DNS and the shim route; connect, disconnect and rm keep the kernel and the shim
// routes in step with the records.
func TestSubIfSandboxLifecycle(t *testing.T) {
	m, k := newTestManager(t)
	n := lanNet(t, m)
	shim := ShimName(n.ID)
	if got := k.shimRoutes(shim); len(got) != 0 {
		t.Errorf("shim routes of an empty network: %v", got)
	}
	// The top of the range but the broadcast address and the gateway.
	if s := k.shims[shim]; s.Parent != "eth0" || s.Addr != netip.MustParsePrefix("192.168.50.253/32") || s.MAC.String() != shimMAC(n.ID).String() {
		t.Errorf("shim %+v; want on eth0 with 192.168.50.253/32", s)
	}
	links := len(k.links)
	web, ep := mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"lan"}, Aliases: []string{"www"}})
	if ep.HostVeth != "" || len(k.links) != links {
		t.Errorf("host veth %q, links %v: a macvlan sandbox has none", ep.HostVeth, k.links)
	}
	if want := []string{"eth0 macvlan/bridge on eth0 02:42:c0:a8:32:80 [192.168.50.128/24]"}; !slices.Equal(k.subIfs(web.NetNSPath), want) {
		t.Errorf("interfaces %v; want %v", k.subIfs(web.NetNSPath), want)
	}
	if gw := k.gw[web.NetNSPath]; gw[0].String() != "192.168.50.254" {
		t.Errorf("default route via %v; want the gateway 192.168.50.254", gw[0])
	}
	if want := []string{"192.168.50.128/32"}; !slices.Equal(k.shimRoutes(shim), want) {
		t.Errorf("shim routes %v; want %v", k.shimRoutes(shim), want)
	}
	snap := m.cfg.Store.Snapshot()
	if !resolver.Embedded(snap, web.ID) {
		t.Errorf("a sandbox on a macvlan network does not get the embedded DNS")
	}
	if eps := snap.EndpointsByName(n.ID, "www"); len(eps) != 1 {
		t.Errorf("alias www on lan: %d endpoints", len(eps))
	}
	rc, err := os.ReadFile(filepath.Join(m.cfg.FilesDir, "web", "resolv.conf"))
	if err != nil || !strings.Contains(string(rc), "nameserver 127.0.0.11") {
		t.Errorf("resolv.conf %q (%v): want the embedded DNS", rc, err)
	}
	if st := firewallState(snap); len(st.Networks) != 1 || st.Networks[0].Bridge != DefaultBridge {
		t.Errorf("firewall networks %+v: want only the default bridge's", st.Networks)
	}

	// --mac-address and --ip are honoured.
	db, _ := mustSandbox(t, m, api.SandboxCreate{Name: "db", Networks: []string{"lan"}, IPv4: "192.168.50.200", MAC: "02:00:00:00:00:42"})
	if want := []string{"eth0 macvlan/bridge on eth0 02:00:00:00:00:42 [192.168.50.200/24]"}; !slices.Equal(k.subIfs(db.NetNSPath), want) {
		t.Errorf("interfaces %v; want %v", k.subIfs(db.NetNSPath), want)
	}
	if want := []string{"192.168.50.128/32", "192.168.50.200/32"}; !slices.Equal(k.shimRoutes(shim), want) {
		t.Errorf("shim routes %v; want %v", k.shimRoutes(shim), want)
	}

	// A bridge network as a second network: a veth as usual, the default route stays on the first.
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.20.0.0/24"}})
	if err := m.Connect(t.Context(), api.NetworkConnect{Network: "app", Sandbox: "web"}); err != nil {
		t.Fatal(err)
	}
	if gw := k.gw[web.NetNSPath]; gw[0].String() != "192.168.50.254" {
		t.Errorf("default route via %v after connect; want 192.168.50.254", gw[0])
	}
	// A second macvlan network by connect: eth2, shim routes of that network only.
	other := mustNetwork(t, m, onParentNet("lan3", "macvlan", "10.33.0.0/24", "parent=eth0", "berth.host_shim=true"))
	if err := m.Connect(t.Context(), api.NetworkConnect{Network: "lan3", Sandbox: "web"}); err != nil {
		t.Fatal(err)
	}
	if got := k.subIfs(web.NetNSPath); len(got) != 2 || !strings.HasPrefix(got[1], "eth2 macvlan/bridge on eth0 02:42:0a:21:00:02 [10.33.0.2/24]") {
		t.Errorf("interfaces after connect %v", got)
	}
	if want := []string{"10.33.0.2/32"}; !slices.Equal(k.shimRoutes(ShimName(other.ID)), want) {
		t.Errorf("lan3 shim routes %v; want %v", k.shimRoutes(ShimName(other.ID)), want)
	}
	if err := m.Disconnect(t.Context(), api.NetworkDisconnect{Network: "lan3", Sandbox: "web"}); err != nil {
		t.Fatal(err)
	}
	if got := k.subIfs(web.NetNSPath); len(got) != 1 || !strings.HasPrefix(got[0], "eth0 ") {
		t.Errorf("interfaces after disconnect %v", got)
	}
	if got := k.shimRoutes(ShimName(other.ID)); len(got) != 0 {
		t.Errorf("lan3 shim routes after disconnect %v", got)
	}
	if err := m.Disconnect(t.Context(), api.NetworkDisconnect{Network: "lan", Sandbox: "web"}); err != nil {
		t.Fatal(err)
	}
	if gw := k.gw[web.NetNSPath]; gw[0].String() != "10.20.0.1" {
		t.Errorf("default route via %v after leaving lan; want app's 10.20.0.1", gw[0])
	}
	if want := []string{"192.168.50.200/32"}; !slices.Equal(k.shimRoutes(shim), want) {
		t.Errorf("shim routes after disconnect %v; want %v", k.shimRoutes(shim), want)
	}

	// rm takes the interface out of the netns before unpinning it (a process could keep
	// the netns, and the interface with its address, alive).
	var ops []string
	k.done = func(op string) { ops = append(ops, op) }
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "db", Force: true}); err != nil {
		t.Fatal(err)
	}
	k.done = nil
	if i, j := slices.Index(ops, "DeleteLinkIn"), slices.Index(ops, "DeleteNetNS"); i < 0 || j < i {
		t.Errorf("kernel calls of rm %v: want DeleteLinkIn before DeleteNetNS", ops)
	}
	if got := k.subIfs(db.NetNSPath); len(got) != 0 {
		t.Errorf("interfaces of a removed sandbox %v", got)
	}
	if got := k.shimRoutes(shim); len(got) != 0 {
		t.Errorf("shim routes after rm %v", got)
	}
	if err := m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "lan"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.links[shim]; ok {
		t.Errorf("shim %s left after network rm", shim)
	}
}

// TestIpvlanSandbox: the ipvlan child has the parent's MAC (none in the request or the
// record), its mode and flag; an internal network gives no default route.
func TestIpvlanSandbox(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, onParentNet("l3", "ipvlan", "10.40.0.0/24", "parent=eth0", "ipvlan_mode=l3", "ipvlan_flag=private"))
	sb, ep := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"l3"}})
	if ep.MAC != "" {
		t.Errorf("ipvlan endpoint MAC %q; want none of its own", ep.MAC)
	}
	spec := k.nsLinks[sb.NetNSPath]["eth0"]
	if spec.Kind != "ipvlan" || spec.Mode != "l3" || spec.Flag != "private" || spec.MAC != nil || spec.Parent != "eth0" {
		t.Errorf("AddSubIf %+v", spec)
	}
	if gw := k.gw[sb.NetNSPath]; gw[0].String() != "10.40.0.1" {
		t.Errorf("default route via %v; want 10.40.0.1", gw[0])
	}
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "b", Networks: []string{"l3"}, MAC: "02:00:00:00:00:01"})
	if want := `invalid mac-address "02:00:00:00:00:01": an ipvlan interface has the MAC address of its parent eth0`; err == nil || err.Error() != want {
		t.Errorf("--mac-address on ipvlan: %v; want %s", err, want)
	}

	iso := mustNetwork(t, m, onParentNet("iso", "ipvlan", "10.41.0.0/24"))
	sb, _ = mustSandbox(t, m, api.SandboxCreate{Name: "c", Networks: []string{"iso"}})
	if gw := k.gw[sb.NetNSPath]; gw[0].IsValid() {
		t.Errorf("default route via %v on an internal network", gw[0])
	}
	if spec := k.nsLinks[sb.NetNSPath]["eth0"]; spec.Parent != iso.Parent.Name || spec.Mode != "l2" || spec.Flag != "bridge" {
		t.Errorf("AddSubIf on the internal parent %+v", spec)
	}

	k.noModule["ipvlan"] = true
	_, err = m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "d", Networks: []string{"l3"}})
	if err == nil || !strings.Contains(err.Error(), "ipvlan kernel module") || strings.Contains(err.Error(), "\n") {
		t.Errorf("create without the ipvlan module: %v; want one line naming it", err)
	}
	if _, err := m.cfg.Store.Snapshot().SandboxByName("d"); err == nil {
		t.Errorf("sandbox d recorded after a failed create")
	}
}

// TestSubIfPublishRefused: -p needs a bridge network to DNAT from.
func TestSubIfPublishRefused(t *testing.T) {
	m, _ := newTestManager(t)
	m.cfg.Ports = newFakePorts()
	lanNet(t, m)
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Networks: []string{"lan"}, Publish: []string{"8080:80"}})
	want := `invalid publish "8080:80": network lan (macvlan) has no bridge to publish from: the sandbox is reachable at its own address on the parent's LAN`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	_, err = m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Networks: []string{"lan"}, PublishAll: true, Expose: []string{"80"}})
	if err == nil || !strings.HasPrefix(err.Error(), `invalid publish-all "80/tcp": network lan (macvlan) has no bridge`) {
		t.Errorf("-P: %v", err)
	}
	// With a bridge network too, the ports map to its address, never the macvlan one.
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.20.0.0/24"}})
	sb, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "b", Networks: []string{"lan", "app"}, Publish: []string{"8080:80"}})
	if err != nil {
		t.Fatal(err)
	}
	st := firewallState(m.cfg.Store.Snapshot())
	if len(st.Ports) != 1 || st.Ports[0].Addr.String() != "10.20.0.2" {
		t.Errorf("ports of %s: %+v; want one to its app address", sb.Name, st.Ports)
	}
}

// TestPassthruSandbox: the kernel gives a passthru child its parent's MAC whatever is
// asked, so the record keeps none of its own (inspect showed a derived MAC the interface
// did not have) and --mac-address is refused.
func TestPassthruSandbox(t *testing.T) {
	m, _ := newTestManager(t)
	mustNetwork(t, m, onParentNet("pt", "macvlan", "10.42.0.0/24", "parent=eth0", "macvlan_mode=passthru"))
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "b", Networks: []string{"pt"}, MAC: "02:00:00:00:00:01"})
	if want := `invalid mac-address "02:00:00:00:00:01": a passthru macvlan interface has the MAC address of its parent eth0`; err == nil || err.Error() != want {
		t.Errorf("--mac-address on passthru: %v; want %s", err, want)
	}
	if _, ep := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"pt"}}); ep.MAC != "" {
		t.Errorf("passthru endpoint MAC %q; want none of its own", ep.MAC)
	}
}
