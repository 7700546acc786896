package kernel

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"

	"berth/netmgr"

	"github.com/vishvananda/netlink"
)

func ping(t *testing.T, nsPath, addr string) {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "ping", "-c1", "-W1", addr).CombinedOutput()
	if err != nil {
		t.Errorf("ping %s from %s: %v\n%s", addr, nsPath, err, out)
	}
}

// TestTwoSandboxes is the CNI two-namespace rig: two netns on one bridge reach each other
// and the gateway.
func TestTwoSandboxes(t *testing.T) {
	k := newLinux(t)
	br := netmgr.BridgeSpec{
		Name:  "bth-br1",
		MAC:   mustMAC(t, "02:42:0a:62:00:01"),
		Addrs: prefixes("10.98.0.1/24", "fd00:98::1/64"),
	}
	if err := k.EnsureBridge(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteLink(br.Name) })

	sandboxes := []struct {
		ns    string
		veth  netmgr.VethSpec
		addr4 string
		addr6 string
	}{
		{ns: "/run/netns/bth-a", addr4: "10.98.0.2", addr6: "fd00:98::2"},
		{ns: "/run/netns/bth-b", addr4: "10.98.0.3", addr6: "fd00:98::3"},
	}
	for i := range sandboxes {
		sb := &sandboxes[i]
		for range 2 { // idempotent
			if err := k.CreateNetNS(sb.ns); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { k.DeleteNetNS(sb.ns) })
		if !k.NetNSExists(sb.ns) {
			t.Fatalf("NetNSExists(%s): got false after CreateNetNS", sb.ns)
		}
		sb.veth = netmgr.VethSpec{
			NetNSPath: sb.ns,
			HostName:  "bth-v" + sb.ns[len(sb.ns)-1:],
			Bridge:    br.Name,
			IfName:    "eth0",
			MAC:       mustMAC(t, "02:42:0a:62:00:0"+sb.addr4[len(sb.addr4)-1:]),
			MTU:       1400,
			Addrs:     prefixes(sb.addr4+"/24", sb.addr6+"/64"),
		}
		for range 2 { // the second call replaces the first pair
			if err := k.AddVeth(sb.veth); err != nil {
				t.Fatal(err)
			}
		}
	}

	a, b := sandboxes[0], sandboxes[1]
	host := linkByName(t, a.veth.HostName)
	if host.Attrs().MasterIndex != linkByName(t, br.Name).Attrs().Index || host.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host end: got master %d flags %s; want the bridge, up", host.Attrs().MasterIndex, host.Attrs().Flags)
	}
	h := handleIn(t, a.ns)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if at := eth0.Attrs(); !bytes.Equal(at.HardwareAddr, a.veth.MAC) || at.MTU != 1400 || at.Flags&net.FlagUp == 0 {
		t.Errorf("eth0: got mac %s mtu %d flags %s; want %s 1400 up", at.HardwareAddr, at.MTU, at.Flags, a.veth.MAC)
	}
	if got, want := globalAddrs(t, h, eth0), []string{"10.98.0.2/24", "fd00:98::2/64"}; !slices.Equal(got, want) {
		t.Errorf("eth0 addresses: got %v; want %v", got, want)
	}
	if lo, err := h.LinkByName("lo"); err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo in %s: got %v, err %v; want up", a.ns, lo, err)
	}

	ping(t, a.ns, b.addr4)
	ping(t, a.ns, b.addr6)
	ping(t, b.ns, "10.98.0.1")
	ping(t, b.ns, "fd00:98::1")

	// Default routes: set (twice), then remove.
	gw4, gw6 := netip.MustParseAddr("10.98.0.1"), netip.MustParseAddr("fd00:98::1")
	for range 2 {
		if err := k.SetDefaultRoutes(a.ns, "eth0", gw4, "eth0", gw6); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := defaultGWs(t, h), []string{"10.98.0.1", "fd00:98::1"}; !slices.Equal(got, want) {
		t.Errorf("default gateways: got %v; want %v", got, want)
	}
	if err := k.SetDefaultRoutes(a.ns, "eth0", netip.Addr{}, "", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if got := defaultGWs(t, h); len(got) != 0 {
		t.Errorf("default gateways after removal: got %v; want none", got)
	}
	if err := k.SetDefaultRoutes(a.ns, "", netip.Addr{}, "", netip.Addr{}); err != nil {
		t.Errorf("removing absent default routes: %v", err)
	}

	// Teardown, each step twice.
	for range 2 {
		if err := k.DeleteNetNS(a.ns); err != nil {
			t.Fatal(err)
		}
	}
	if k.NetNSExists(a.ns) {
		t.Errorf("NetNSExists(%s): got true after DeleteNetNS", a.ns)
	}
	if _, err := os.Stat(a.ns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after DeleteNetNS: got %v; want not exist", a.ns, err)
	}
	for range 2 {
		if err := k.DeleteLink(b.veth.HostName); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := handleIn(t, b.ns).LinkByName("eth0"); err == nil {
		t.Errorf("eth0 in %s after deleting its host end: still there", b.ns)
	}
}

func defaultGWs(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	var gws []string
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteListFiltered(family, &netlink.Route{}, netlink.RT_FILTER_DST)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			gws = append(gws, r.Gw.String())
		}
	}
	slices.Sort(gws)
	return gws
}
