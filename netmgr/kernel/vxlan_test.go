package kernel

import (
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"berth/internal/nsutil"
	"berth/internal/testns"
	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// overlayHost is one simulated host of the two-host rig: a netns with an underlay
// address, a bridge and a VXLAN device, and a sandbox netns on that bridge.
type overlayHost struct {
	nh       *netlink.Handle // in the host netns
	underlay netip.Addr
	sandbox  string // netns path
	peer     netmgr.VxlanPeer
}

const (
	rigBridge   = "br0"
	rigVxlan    = "vx0"
	rigUnderMTU = 1400
)

// newOverlayRig makes two hosts joined by a veth pair (the underlay, MTU 1400), each
// with a bridge and a sandbox whose eth0 is on it; the VXLAN devices are the test's.
func newOverlayRig(t *testing.T) (a, b *overlayHost) {
	t.Helper()
	a = &overlayHost{underlay: netip.MustParseAddr("192.168.77.1")}
	b = &overlayHost{underlay: netip.MustParseAddr("192.168.77.2")}
	paths := [2]string{testns.NewNetNS(t, "bth-host-a"), testns.NewNetNS(t, "bth-host-b")}
	var fds [2]*nsutil.Handle
	for i, p := range paths {
		ns, err := nsutil.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		fds[i] = ns
	}
	ul := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "ul0", MTU: rigUnderMTU, Namespace: netlink.NsFd(fds[0].Fd())},
		PeerName:      "ul0",
		PeerNamespace: netlink.NsFd(fds[1].Fd()),
	}
	if err := netlink.LinkAdd(ul); err != nil {
		t.Fatalf("underlay veth: %v", err)
	}
	for i, h := range []*overlayHost{a, b} {
		n := byte(2 + i)
		h.nh = handleIn(t, paths[i])
		h.sandbox = testns.NewNetNS(t, "bth-sb-"+string(rune('a'+i)))
		h.peer = netmgr.VxlanPeer{
			MAC: net.HardwareAddr{0x02, 0x77, 0, 0, 0, n},
			Addrs: []netip.Addr{
				netip.AddrFrom4([4]byte{10, 77, 0, n}),
				netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x77, 15: n}),
			},
			Host: h.underlay,
		}
		dev, err := h.nh.LinkByName("ul0")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.nh.AddrAdd(dev, prefixAddr(netip.PrefixFrom(h.underlay, 24))); err != nil {
			t.Fatal(err)
		}
		for _, l := range []netlink.Link{dev, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: rigBridge}}} {
			if l.Attrs().Index == 0 {
				if err := h.nh.LinkAdd(l); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.nh.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		sb, err := nsutil.Open(h.sandbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: "vs0", MasterIndex: linkIn(t, h.nh, rigBridge).Attrs().Index},
			PeerName:         "eth0",
			PeerHardwareAddr: h.peer.MAC,
			PeerNamespace:    netlink.NsFd(sb.Fd()),
		}
		if err := h.nh.LinkAdd(veth); err != nil {
			t.Fatal(err)
		}
		if err := h.nh.LinkSetUp(linkIn(t, h.nh, "vs0")); err != nil {
			t.Fatal(err)
		}
		snh := handleIn(t, h.sandbox)
		eth0 := linkIn(t, snh, "eth0")
		for _, p := range []netip.Prefix{netip.PrefixFrom(h.peer.Addrs[0], 24), netip.PrefixFrom(h.peer.Addrs[1], 64)} {
			if err := snh.AddrAdd(eth0, prefixAddr(p)); err != nil {
				t.Fatal(err)
			}
		}
		if err := snh.LinkSetUp(eth0); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func linkIn(t *testing.T, nh *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := nh.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// pingErr pings addr once from the netns at nsPath.
func pingErr(nsPath string, addr netip.Addr) error {
	out, err := exec.Command("nsenter", "--net="+nsPath, "ping", "-c1", "-W1", addr.String()).CombinedOutput()
	if err != nil {
		return &pingError{err: err, out: strings.TrimSpace(string(out))}
	}
	return nil
}

type pingError struct {
	err error
	out string
}

func (e *pingError) Error() string { return e.err.Error() + ": " + e.out }

// vxlanEntries lists dev's static FDB entries ("mac host") and permanent neighbours
// ("ip mac"), sorted.
func vxlanEntries(t *testing.T, nh *netlink.Handle, dev string) (fdb, neigh []string) {
	t.Helper()
	index := linkIn(t, nh, dev).Attrs().Index
	all, err := nh.NeighList(index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		if n.Flags&netlink.NTF_SELF != 0 && n.IP != nil {
			fdb = append(fdb, n.HardwareAddr.String()+" "+n.IP.String())
		}
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		all, err := nh.NeighList(index, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range all {
			if n.State&netlink.NUD_PERMANENT != 0 {
				neigh = append(neigh, n.IP.String()+" "+n.HardwareAddr.String())
			}
		}
	}
	slices.Sort(fdb)
	slices.Sort(neigh)
	return fdb, neigh
}

// TestVxlanTwoHosts is the overlay data plane across two simulated hosts: a sandbox on
// each reaches the other only while both VXLAN devices share the VNI and hold the other
// side's entries.
func TestVxlanTwoHosts(t *testing.T) {
	k := newLinux(t)
	a, b := newOverlayRig(t)
	ensure := func(h *overlayHost, vni int) {
		t.Helper()
		spec := netmgr.VxlanSpec{Name: rigVxlan, VNI: vni, Local: h.underlay, Bridge: rigBridge}
		for range 2 { // idempotent
			mtu, err := k.ensureVxlan(h.nh, spec)
			if err != nil {
				t.Fatal(err)
			}
			if mtu != rigUnderMTU-50 {
				t.Errorf("EnsureVxlan mtu: got %d; want %d", mtu, rigUnderMTU-50)
			}
		}
		vx := linkIn(t, h.nh, rigVxlan).(*netlink.Vxlan)
		if vx.MTU != rigUnderMTU-50 || vx.VxlanId != vni || vx.Port != netmgr.VxlanPort || vx.Learning || !vx.Proxy ||
			vx.MasterIndex != linkIn(t, h.nh, rigBridge).Attrs().Index || vx.Flags&net.FlagUp == 0 {
			t.Errorf("vxlan: got mtu %d vni %d port %d learning %v proxy %v master %d flags %s; want %d %d %d false true bridge up",
				vx.MTU, vx.VxlanId, vx.Port, vx.Learning, vx.Proxy, vx.MasterIndex, vx.Flags, rigUnderMTU-50, vni, netmgr.VxlanPort)
		}
	}
	program := func(on, remote *overlayHost) {
		t.Helper()
		for range 2 { // idempotent
			if err := k.addVxlanPeer(on.nh, rigVxlan, remote.peer); err != nil {
				t.Fatal(err)
			}
		}
	}
	reach := func(want bool, why string) {
		t.Helper()
		for _, addr := range b.peer.Addrs { // ARP and ND, both answered by a's device
			err := pingErr(a.sandbox, addr)
			// A neighbour entry that failed just before (the check without peers) may
			// drop the first echo while it is solicited again: two more tries.
			for try := 0; want && err != nil && try < 2; try++ {
				err = pingErr(a.sandbox, addr)
			}
			if want && err != nil {
				t.Errorf("%s: ping a -> b %s: %v", why, addr, err)
			}
			if !want && err == nil {
				t.Errorf("%s: ping a -> b %s got through", why, addr)
			}
		}
	}

	ensure(a, 77)
	ensure(b, 77)
	reach(false, "no peers programmed")
	program(a, b)
	program(b, a)
	reach(true, "same vni, peers programmed")
	if fdb, neigh := vxlanEntries(t, a.nh, rigVxlan); !slices.Equal(fdb, []string{"02:77:00:00:00:03 192.168.77.2"}) ||
		!slices.Equal(neigh, []string{"10.77.0.3 02:77:00:00:00:03", "fd77::3 02:77:00:00:00:03"}) {
		t.Errorf("entries on a: got fdb %v neigh %v; want b's only", fdb, neigh)
	}

	// Another VNI on b: a's packets reach b's host but no device there takes them.
	if _, err := k.ensureVxlan(b.nh, netmgr.VxlanSpec{Name: rigVxlan, VNI: 78, Local: b.underlay, Bridge: rigBridge}); err == nil ||
		!strings.Contains(err.Error(), "vni 77") {
		t.Errorf("EnsureVxlan with another vni over an existing device: got %v; want an error naming vni 77", err)
	}
	for range 2 {
		if err := k.deleteVxlan(b.nh, rigVxlan); err != nil {
			t.Fatal(err)
		}
	}
	ensure(b, 78)
	program(b, a)
	reach(false, "different vni")
	if err := k.deleteVxlan(b.nh, rigVxlan); err != nil {
		t.Fatal(err)
	}
	ensure(b, 77)
	program(b, a)
	reach(true, "vni back to the same")

	// Without the remote's FDB entry a's device drops the frame (no default entry to
	// flood to), even though a's sandbox still has b's MAC in its ARP cache.
	for range 2 { // idempotent
		if err := k.deleteVxlanPeer(a.nh, rigVxlan, b.peer); err != nil {
			t.Fatal(err)
		}
	}
	if fdb, neigh := vxlanEntries(t, a.nh, rigVxlan); len(fdb)+len(neigh) != 0 {
		t.Errorf("entries on a after delete: got fdb %v neigh %v; want none", fdb, neigh)
	}
	reach(false, "remote's entries deleted")

	// Sync: from nothing to b plus a phantom peer, then to b only, then to nothing.
	phantom := netmgr.VxlanPeer{
		MAC:   mustMAC(t, "02:77:00:00:00:09"),
		Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.9")},
		Host:  netip.MustParseAddr("192.168.77.9"),
	}
	// An all-zeros default entry (flooding to a host, which berth never programs) is
	// extra too.
	flood := fdbEntry(linkIn(t, a.nh, rigVxlan).Attrs().Index, make(net.HardwareAddr, 6), phantom.Host)
	if err := a.nh.NeighAppend(flood); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		want       []netmgr.VxlanPeer
		fdb, neigh []string
		reach      bool
	}{
		{[]netmgr.VxlanPeer{phantom, b.peer},
			[]string{"02:77:00:00:00:03 192.168.77.2", "02:77:00:00:00:09 192.168.77.9"},
			[]string{"10.77.0.3 02:77:00:00:00:03", "10.77.0.9 02:77:00:00:00:09", "fd77::3 02:77:00:00:00:03"}, true},
		{[]netmgr.VxlanPeer{b.peer},
			[]string{"02:77:00:00:00:03 192.168.77.2"},
			[]string{"10.77.0.3 02:77:00:00:00:03", "fd77::3 02:77:00:00:00:03"}, true},
		{nil, nil, nil, false},
	}
	for i, s := range steps {
		for range 2 { // the second sync finds nothing to do
			if err := k.syncVxlanPeers(a.nh, rigVxlan, s.want); err != nil {
				t.Fatal(err)
			}
		}
		if fdb, neigh := vxlanEntries(t, a.nh, rigVxlan); !slices.Equal(fdb, s.fdb) || !slices.Equal(neigh, s.neigh) {
			t.Errorf("sync step %d: got fdb %v neigh %v; want %v %v", i, fdb, neigh, s.fdb, s.neigh)
		}
		reach(s.reach, "after sync step "+string(rune('0'+i)))
	}
	// A peer moved to another host is re-pointed, and a MAC wanted on two hosts refused.
	moved := b.peer
	moved.Host = phantom.Host
	if err := k.syncVxlanPeers(a.nh, rigVxlan, []netmgr.VxlanPeer{b.peer}); err != nil {
		t.Fatal(err)
	}
	if err := k.syncVxlanPeers(a.nh, rigVxlan, []netmgr.VxlanPeer{moved}); err != nil {
		t.Fatal(err)
	}
	if fdb, _ := vxlanEntries(t, a.nh, rigVxlan); !slices.Equal(fdb, []string{"02:77:00:00:00:03 192.168.77.9"}) {
		t.Errorf("fdb after the peer moved: got %v; want it on 192.168.77.9", fdb)
	}
	if err := k.syncVxlanPeers(a.nh, rigVxlan, []netmgr.VxlanPeer{b.peer, moved}); err == nil {
		t.Error("sync with one MAC on two hosts: got nil error")
	}
}

// TestEnsureVxlan checks the daemon-netns methods: conflicts name their field, and
// delete and peer changes may be repeated.
func TestEnsureVxlan(t *testing.T) {
	k := newLinux(t)
	ul := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "bth-ul0"}, PeerName: "bth-ul1"}
	if err := netlink.LinkAdd(ul); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteLink(ul.Name) })
	for _, p := range prefixes("192.168.79.1/24", "192.168.79.2/24") {
		if err := netlink.AddrAdd(linkByName(t, ul.Name), prefixAddr(p)); err != nil {
			t.Fatal(err)
		}
	}
	br := netmgr.BridgeSpec{Name: "bth-br-vx"}
	if err := k.EnsureBridge(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteLink(br.Name) })

	spec := netmgr.VxlanSpec{Name: netmgr.VxlanName(0x4d, "0123456789ab"), VNI: 0x4d, Local: netip.MustParseAddr("192.168.79.1"), Bridge: br.Name}
	if spec.Name != "vx-00004d-01234" {
		t.Errorf("VxlanName: got %q", spec.Name)
	}
	t.Cleanup(func() { k.DeleteVxlan(spec.Name) })
	for range 2 {
		if mtu, err := k.EnsureVxlan(spec); err != nil || mtu != 1450 {
			t.Fatalf("EnsureVxlan: got %d, %v; want 1450", mtu, err)
		}
	}
	// The underlay's MTU changed: the device follows on the next call.
	if err := netlink.LinkSetMTU(linkByName(t, ul.Name), 1400); err != nil {
		t.Fatal(err)
	}
	if mtu, err := k.EnsureVxlan(spec); err != nil || mtu != 1350 || linkByName(t, spec.Name).Attrs().MTU != 1350 {
		t.Errorf("EnsureVxlan after the underlay went to 1400: got %d, %v, device mtu %d; want 1350",
			mtu, err, linkByName(t, spec.Name).Attrs().MTU)
	}
	bad := func(field string, edit func(*netmgr.VxlanSpec)) {
		t.Helper()
		s := spec
		edit(&s)
		if _, err := k.EnsureVxlan(s); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("EnsureVxlan with another %s: got %v; want an error naming it", field, err)
		}
	}
	bad("vni", func(s *netmgr.VxlanSpec) { s.VNI = 0x4e })
	bad("port", func(s *netmgr.VxlanSpec) { s.Port = 8472 })
	bad("local", func(s *netmgr.VxlanSpec) { s.Local = netip.MustParseAddr("192.168.79.2") })
	bad("type", func(s *netmgr.VxlanSpec) { s.Name = "lo" })
	bad("no device", func(s *netmgr.VxlanSpec) { s.Name, s.Local = "bth-vx-x", netip.MustParseAddr("10.1.2.3") })
	bad("name", func(s *netmgr.VxlanSpec) { s.Name = "bth-vxlan-too-long" })
	bad("vni", func(s *netmgr.VxlanSpec) { s.Name, s.VNI = "bth-vx-x", 1<<24 })

	peer := netmgr.VxlanPeer{
		MAC:   mustMAC(t, "02:79:00:00:00:05"),
		Addrs: []netip.Addr{netip.MustParseAddr("10.79.0.5")},
		Host:  netip.MustParseAddr("192.168.79.5"),
	}
	for range 2 {
		if err := k.AddVxlanPeer(spec.Name, peer); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := k.DeleteVxlanPeer(spec.Name, peer); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.SyncVxlanPeers(spec.Name, []netmgr.VxlanPeer{peer}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := k.DeleteVxlan(spec.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.DeleteVxlanPeer(spec.Name, peer); err != nil {
		t.Errorf("DeleteVxlanPeer after the device went: %v", err)
	}
	if err := k.DeleteVxlan("lo"); err == nil {
		t.Error("DeleteVxlan(lo): got nil error")
	}
}
