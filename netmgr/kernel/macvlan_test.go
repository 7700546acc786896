package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The unit tests below check the netlink requests berth builds, without root: this kernel
// has neither the 8021q nor the ipvlan module, so for those kinds they are all the
// checking there is here.

func TestBuildSubIf(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x61, 0x00, 0x02}
	base := netmgr.SubIfSpec{NetNSPath: "/run/netns/sb1", Parent: "eth0", IfName: "eth1", MTU: 1400}
	tmp := netmgr.SubIfTempName(base.NetNSPath, base.IfName)
	for mode, want := range map[string]netlink.MacvlanMode{
		"": netlink.MACVLAN_MODE_BRIDGE, "bridge": netlink.MACVLAN_MODE_BRIDGE,
		"private": netlink.MACVLAN_MODE_PRIVATE, "vepa": netlink.MACVLAN_MODE_VEPA,
		"passthru": netlink.MACVLAN_MODE_PASSTHRU,
	} {
		spec := base
		spec.Kind, spec.Mode, spec.MAC = "macvlan", mode, mac
		l, err := buildSubIf(spec, 7)
		if err != nil {
			t.Errorf("macvlan mode %q: %v", mode, err)
			continue
		}
		mv, ok := l.(*netlink.Macvlan)
		if !ok {
			t.Errorf("macvlan mode %q: got %T", mode, l)
			continue
		}
		wantMAC := mac
		if mode == "passthru" {
			wantMAC = nil // the kernel gives it the parent's
		}
		if mv.Mode != want || mv.ParentIndex != 7 || mv.Name != tmp || mv.MTU != 1400 || !bytes.Equal(mv.HardwareAddr, wantMAC) {
			t.Errorf("macvlan mode %q: got mode %d parent %d name %s mtu %d mac %s; want %d 7 %s 1400 %s",
				mode, mv.Mode, mv.ParentIndex, mv.Name, mv.MTU, mv.HardwareAddr, want, tmp, wantMAC)
		}
	}
	ipModes := map[string]netlink.IPVlanMode{"": netlink.IPVLAN_MODE_L2, "l2": netlink.IPVLAN_MODE_L2,
		"l3": netlink.IPVLAN_MODE_L3, "l3s": netlink.IPVLAN_MODE_L3S}
	ipFlags := map[string]netlink.IPVlanFlag{"": netlink.IPVLAN_FLAG_BRIDGE, "bridge": netlink.IPVLAN_FLAG_BRIDGE,
		"private": netlink.IPVLAN_FLAG_PRIVATE, "vepa": netlink.IPVLAN_FLAG_VEPA}
	for mode, wantMode := range ipModes {
		for flag, wantFlag := range ipFlags {
			spec := base
			spec.Kind, spec.Mode, spec.Flag, spec.MTU = "ipvlan", mode, flag, 0
			l, err := buildSubIf(spec, 3)
			if err != nil {
				t.Errorf("ipvlan %q/%q: %v", mode, flag, err)
				continue
			}
			iv, ok := l.(*netlink.IPVlan)
			if !ok {
				t.Errorf("ipvlan %q/%q: got %T", mode, flag, l)
				continue
			}
			if iv.Mode != wantMode || iv.Flag != wantFlag || iv.ParentIndex != 3 || iv.Name != tmp || iv.MTU != 0 || iv.HardwareAddr != nil {
				t.Errorf("ipvlan %q/%q: got mode %d flag %d parent %d name %s mtu %d mac %s; want %d %d 3 %s 0 none",
					mode, flag, iv.Mode, iv.Flag, iv.ParentIndex, iv.Name, iv.MTU, iv.HardwareAddr, wantMode, wantFlag, tmp)
			}
		}
	}

	for _, tc := range []struct {
		name   string
		edit   func(*netmgr.SubIfSpec)
		parent int
		want   string
	}{
		{"macvlan mode", func(s *netmgr.SubIfSpec) { s.Kind, s.Mode = "macvlan", "l2" }, 1, `macvlan mode "l2"`},
		{"ipvlan mode", func(s *netmgr.SubIfSpec) { s.Kind, s.Mode = "ipvlan", "bridge" }, 1, `ipvlan mode "bridge"`},
		{"ipvlan flag", func(s *netmgr.SubIfSpec) { s.Kind, s.Flag = "ipvlan", "passthru" }, 1, `ipvlan flag "passthru"`},
		{"macvlan flag", func(s *netmgr.SubIfSpec) { s.Kind, s.Flag = "macvlan", "private" }, 1, `flag "private"`},
		{"kind", func(s *netmgr.SubIfSpec) { s.Kind = "vxlan" }, 1, `kind "vxlan"`},
		{"ipvlan mac", func(s *netmgr.SubIfSpec) { s.Kind, s.MAC = "ipvlan", mac }, 1, "parent's MAC"},
		{"short mac", func(s *netmgr.SubIfSpec) { s.Kind, s.MAC = "macvlan", mac[:3] }, 1, "want 6 bytes"},
		{"multicast mac", func(s *netmgr.SubIfSpec) { s.Kind, s.MAC = "macvlan", net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }, 1, "unicast"},
		{"no ifname", func(s *netmgr.SubIfSpec) { s.Kind, s.IfName = "macvlan", "" }, 1, "ifname name"},
		{"long ifname", func(s *netmgr.SubIfSpec) { s.Kind, s.IfName = "macvlan", "eth0123456789012" }, 1, "ifname name"},
		{"mtu", func(s *netmgr.SubIfSpec) { s.Kind, s.MTU = "macvlan", -1 }, 1, "mtu -1"},
		{"parent index", func(s *netmgr.SubIfSpec) { s.Kind = "macvlan" }, 0, "parent eth0"},
	} {
		spec := base
		tc.edit(&spec)
		l, err := buildSubIf(spec, tc.parent)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, %v; want a one-line error containing %q", tc.name, l, err, tc.want)
		}
	}
}

func TestBuildParent(t *testing.T) {
	l, err := buildParent(netmgr.ParentSpec{Name: "eth0.20", Link: "eth0", VLAN: 20}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := l.(*netlink.Vlan); !ok || v.Name != "eth0.20" || v.VlanId != 20 || v.ParentIndex != 5 || v.VlanProtocol != netlink.VLAN_PROTOCOL_8021Q {
		t.Errorf("vlan: got %#v; want eth0.20 id 20 on index 5, 802.1Q", l)
	}
	name := netmgr.InternalParentName("0123456789abcdef")
	l, err = buildParent(netmgr.ParentSpec{Name: name, Internal: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := l.(*netlink.Veth); !ok || v.Name != "bmv-0123456789" || v.PeerName != "bmp-0123456789" {
		t.Errorf("internal: got %#v; want veth bmv-0123456789 / bmp-0123456789", l)
	}
	for _, tc := range []struct {
		spec  netmgr.ParentSpec
		lower int
		want  string
	}{
		{netmgr.ParentSpec{Name: "eth9"}, 0, "parent interface eth9 not found"},
		{netmgr.ParentSpec{Name: "eth0.5000", Link: "eth0", VLAN: 5000}, 5, "vlan id 5000 out of range"},
		{netmgr.ParentSpec{Name: "eth0.-1", Link: "eth0", VLAN: -1}, 5, "vlan id -1 out of range"},
		{netmgr.ParentSpec{Name: "x.20", VLAN: 20}, 5, "no lower link"},
		{netmgr.ParentSpec{Name: "eth0.20", Link: "eth0", VLAN: 20}, 0, "lower link eth0 has no index"},
		{netmgr.ParentSpec{Name: "bmv-1", Internal: true, VLAN: 20}, 0, "internal parent has no VLAN"},
		{netmgr.ParentSpec{Name: "", Internal: true}, 0, "parent name"},
		{netmgr.ParentSpec{Name: "averyveryverylongname", Internal: true}, 0, "parent name"},
	} {
		if l, err := buildParent(tc.spec, tc.lower); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, %v; want an error containing %q", tc.spec, l, err, tc.want)
		}
	}
}

func TestBuildShim(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x61, 0x00, 0xfa}
	spec := netmgr.ShimSpec{Name: netmgr.ShimName("abcdef0123456789"), Parent: "eth0", MAC: mac, Addr: netip.MustParsePrefix("10.0.0.250/32")}
	l, err := buildShim(spec, 4)
	if err != nil {
		t.Fatal(err)
	}
	if mv, ok := l.(*netlink.Macvlan); !ok || mv.Name != "bsh-abcdef01234" || mv.Mode != netlink.MACVLAN_MODE_BRIDGE ||
		mv.ParentIndex != 4 || !bytes.Equal(mv.HardwareAddr, mac) {
		t.Errorf("shim: got %#v; want macvlan bsh-abcdef01234 bridge on index 4 with %s", l, mac)
	}
	spec.Addr = netip.Prefix{}
	if _, err := buildShim(spec, 4); err == nil || !strings.Contains(err.Error(), "shim address") {
		t.Errorf("shim without address: got %v; want an error naming the address", err)
	}
}

func TestNames(t *testing.T) {
	for _, n := range []string{
		netmgr.InternalParentName("0123456789abcdef0123"), netmgr.PeerName(netmgr.InternalParentName("0123456789abcdef")),
		netmgr.ShimName("0123456789abcdef0123"), netmgr.SubIfTempName("/run/berth/netns/0123456789abcdef", "eth0"),
	} {
		if len(n) > unix.IFNAMSIZ-1 {
			t.Errorf("%s: %d bytes; the kernel takes at most 15", n, len(n))
		}
	}
	a, b := netmgr.SubIfTempName("/run/netns/a", "eth0"), netmgr.SubIfTempName("/run/netns/a", "eth1")
	c := netmgr.SubIfTempName("/run/netns/b", "eth0")
	if a == b || a == c || !strings.HasPrefix(a, netmgr.SubIfTempPrefix) || len(a) != 15 {
		t.Errorf("temp names: %s %s %s; want three distinct 15-byte %s names", a, b, c, netmgr.SubIfTempPrefix)
	}
	if a != netmgr.SubIfTempName("/run/netns/a", "eth0") {
		t.Errorf("SubIfTempName is not stable")
	}
}

func TestModuleErr(t *testing.T) {
	errNS := fmt.Errorf("add: %w", unix.EOPNOTSUPP)
	for kind, want := range map[string]string{"vlan": "8021q kernel module (modprobe 8021q)", "ipvlan": "ipvlan kernel module (modprobe ipvlan)"} {
		if err := moduleErr(kind, errNS); !strings.Contains(err.Error(), want) || !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("%s: got %v; want it to name %q and wrap EOPNOTSUPP", kind, err, want)
		}
	}
	if err := moduleErr("vlan", unix.EEXIST); !errors.Is(err, unix.EEXIST) || strings.Contains(err.Error(), "module") {
		t.Errorf("EEXIST: got %v; want it unchanged", err)
	}
}

// lanRig makes the test's "physical LAN": a veth pair whose end bth-lan0 stays in the
// test's netns as the parent, and whose end lan0 sits in the netns bth-lan with addresses
// 10.97.0.254/24 and fd00:97::fe/64, as another machine on the wire would.
func lanRig(t *testing.T, k *Linux) (parent string, lanNS string) {
	t.Helper()
	parent, lanNS = "bth-lan0", "/run/netns/bth-lan"
	if err := k.CreateNetNS(lanNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteNetNS(lanNS) })
	ns := handleIn(t, lanNS)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: parent}, PeerName: "lan0"}
	veth.PeerNamespace = netlink.NsFd(mustNSFd(t, lanNS))
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteLink(parent) })
	lan, err := ns.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prefixes("10.97.0.254/24", "fd00:97::fe/64") {
		if err := ns.AddrAdd(lan, prefixAddr(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns.LinkSetUp(lan); err != nil {
		t.Fatal(err)
	}
	return parent, lanNS
}

func mustNSFd(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestMacvlan(t *testing.T) {
	k := newLinux(t)
	parent, lanNS := lanRig(t, k)

	// An existing parent is used as it is, and set up.
	for range 2 {
		created, err := k.EnsureParent(netmgr.ParentSpec{Name: parent})
		if err != nil || created {
			t.Fatalf("EnsureParent(%s): got %v, %v; want false, nil", parent, created, err)
		}
	}
	if linkByName(t, parent).Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("parent %s: not up after EnsureParent", parent)
	}
	if _, err := k.EnsureParent(netmgr.ParentSpec{Name: "bth-eth9"}); err == nil || err.Error() != "parent interface bth-eth9 not found" {
		t.Errorf("missing parent: got %v; want \"parent interface bth-eth9 not found\"", err)
	}

	// An internal parent: a veth pair, both ends up, made once.
	internal := netmgr.InternalParentName("0123456789abcdef")
	t.Cleanup(func() { k.DeleteLink(internal) })
	for i, want := range []bool{true, false} {
		created, err := k.EnsureParent(netmgr.ParentSpec{Name: internal, Internal: true})
		if err != nil || created != want {
			t.Fatalf("EnsureParent(internal) call %d: got %v, %v; want %v, nil", i+1, created, err, want)
		}
	}
	for _, n := range []string{internal, netmgr.PeerName(internal)} {
		if l := linkByName(t, n); l.Type() != "veth" || l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("internal parent end %s: got type %s flags %s; want veth, up", n, l.Type(), l.Attrs().Flags)
		}
	}
	if err := k.DeleteLink(internal); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(netmgr.PeerName(internal)); !isLinkNotFound(err) {
		t.Errorf("peer after DeleteLink(%s): got %v; want not found", internal, err)
	}

	// A sandbox's macvlan, made twice (the second replaces the first).
	sb := "/run/netns/bth-mv1"
	if err := k.CreateNetNS(sb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteNetNS(sb) })
	spec := netmgr.SubIfSpec{NetNSPath: sb, Parent: parent, Kind: "macvlan", Mode: "bridge", IfName: "eth0",
		MAC: mustMAC(t, "02:42:0a:61:00:02"), MTU: 1400, Addrs: prefixes("10.97.0.2/24", "fd00:97::2/64")}
	h := handleIn(t, sb)
	var firstIndex int
	for i := range 2 {
		if err := k.AddSubIf(spec); err != nil {
			t.Fatal(err)
		}
		l := checkSubIf(t, h, spec, linkByName(t, parent).Attrs().Index)
		if i == 0 {
			firstIndex = l.Attrs().Index
		} else if l.Attrs().Index == firstIndex {
			t.Errorf("second AddSubIf kept link %d; want it replaced", firstIndex)
		}
	}
	tmp := netmgr.SubIfTempName(sb, "eth0")
	if _, err := h.LinkByName(tmp); !isLinkNotFound(err) {
		t.Errorf("temporary name %s in the sandbox: got %v; want not found", tmp, err)
	}
	if _, err := netlink.LinkByName(tmp); !isLinkNotFound(err) {
		t.Errorf("temporary name %s in the daemon netns: got %v; want not found", tmp, err)
	}
	ping(t, sb, "10.97.0.254")
	ping(t, sb, "fd00:97::fe")
	ping(t, lanNS, "10.97.0.2")
	if mac := lanNeighbour(t, lanNS, "10.97.0.2"); mac != spec.MAC.String() {
		t.Errorf("LAN neighbour 10.97.0.2: got %q; want the sandbox's MAC %s", mac, spec.MAC)
	}

	// A stale eth0 of another kind (a crash left a veth end) is replaced.
	if err := k.DeleteLinkIn(sb, "eth0"); err != nil {
		t.Fatal(err)
	}
	stale := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "bth-stale"}
	if err := h.LinkAdd(stale); err != nil {
		t.Fatal(err)
	}
	if err := k.AddSubIf(spec); err != nil {
		t.Fatal(err)
	}
	checkSubIf(t, h, spec, linkByName(t, parent).Attrs().Index)
	if _, err := h.LinkByName("bth-stale"); !isLinkNotFound(err) {
		t.Errorf("stale veth's peer: got %v; want gone with eth0", err)
	}

	// A parent that does not exist is named, and nothing is left behind.
	bad := spec
	bad.Parent, bad.IfName = "bth-eth9", "eth1"
	if err := k.AddSubIf(bad); err == nil || !strings.Contains(err.Error(), "parent interface bth-eth9 not found") {
		t.Errorf("AddSubIf on a missing parent: got %v; want it named", err)
	}
	// An MTU above the parent's is refused with both numbers.
	bad = spec
	bad.MTU, bad.IfName = 9000, "eth1"
	if err := k.AddSubIf(bad); err == nil || !strings.Contains(err.Error(), "mtu 9000: above parent bth-lan0's 1500") {
		t.Errorf("AddSubIf with mtu 9000: got %v; want it named", err)
	}
	// A bad mode is refused before the kernel is asked.
	bad = spec
	bad.Mode, bad.IfName = "l2", "eth1"
	if err := k.AddSubIf(bad); err == nil || !strings.Contains(err.Error(), `macvlan mode "l2"`) {
		t.Errorf("AddSubIf with mode l2: got %v; want the mode named", err)
	}
	if _, err := h.LinkByName("eth1"); !isLinkNotFound(err) {
		t.Errorf("eth1 after failed AddSubIf: got %v; want not found", err)
	}

	// The shim: the host reaches the sandbox through it, and its routes follow the spec.
	shim := netmgr.ShimSpec{Name: netmgr.ShimName("0123456789abcdef"), Parent: parent, MAC: mustMAC(t, "02:42:0a:61:00:fa"),
		Addr: netip.MustParsePrefix("10.97.0.250/32"), Routes: prefixes("10.97.0.2/32", "fd00:97::2/128")}
	t.Cleanup(func() { k.DeleteLink(shim.Name) })
	for range 2 {
		if err := k.EnsureShim(shim); err != nil {
			t.Fatal(err)
		}
	}
	checkShim(t, shim, linkByName(t, parent).Attrs().Index)
	ping(t, "/proc/self/ns/net", "10.97.0.2")

	// A route put on the shim by someone else goes; changed routes follow; none at the end.
	sl := linkByName(t, shim.Name)
	extra := &netlink.Route{LinkIndex: sl.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(10, 97, 0, 9).To4(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}
	if err := netlink.RouteAdd(extra); err != nil {
		t.Fatal(err)
	}
	shim.Routes = prefixes("10.97.0.3/32", "10.97.0.4/32", "fd00:97::3/128")
	if err := k.EnsureShim(shim); err != nil {
		t.Fatal(err)
	}
	checkShim(t, shim, linkByName(t, parent).Attrs().Index)
	shim.Routes = nil
	if err := k.EnsureShim(shim); err != nil {
		t.Fatal(err)
	}
	checkShim(t, shim, linkByName(t, parent).Attrs().Index)

	// A link under the shim's name that is not the shim is replaced.
	if err := k.DeleteLink(shim.Name); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: shim.Name}, PeerName: "bth-shimpeer"}); err != nil {
		t.Fatal(err)
	}
	shim.Routes = prefixes("10.97.0.2/32")
	if err := k.EnsureShim(shim); err != nil {
		t.Fatal(err)
	}
	checkShim(t, shim, linkByName(t, parent).Attrs().Index)
	if _, err := netlink.LinkByName("bth-shimpeer"); !isLinkNotFound(err) {
		t.Errorf("stale veth under the shim's name: peer still there (%v)", err)
	}
	if err := k.DeleteLink(shim.Name); err != nil {
		t.Fatal(err)
	}

	// passthru: the only child of its parent, with the parent's MAC; a second is refused
	// with a line that says why.
	if err := k.DeleteLinkIn(sb, "eth0"); err != nil {
		t.Fatal(err)
	}
	pt := spec
	pt.Mode = "passthru"
	if err := k.AddSubIf(pt); err != nil {
		t.Fatal(err)
	}
	pt.MAC = linkByName(t, parent).Attrs().HardwareAddr
	checkSubIf(t, h, pt, linkByName(t, parent).Attrs().Index)
	ping(t, sb, "10.97.0.254")
	pt.IfName = "eth1"
	if err := k.AddSubIf(pt); err == nil || !strings.Contains(err.Error(), "passthru macvlan must be the only") {
		t.Errorf("second passthru child: got %v; want the kernel's refusal explained", err)
	}
	if _, err := h.LinkByName("eth1"); !isLinkNotFound(err) {
		t.Errorf("eth1 after the refused passthru: got %v; want not found", err)
	}

	// DeleteLinkIn: twice, and in a netns that is gone.
	for range 2 {
		if err := k.DeleteLinkIn(sb, "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.LinkByName("eth0"); !isLinkNotFound(err) {
		t.Errorf("eth0 after DeleteLinkIn: got %v; want not found", err)
	}
	if err := k.DeleteLinkIn("/run/netns/bth-gone", "eth0"); err != nil {
		t.Errorf("DeleteLinkIn in a missing netns: %v", err)
	}
}

// checkSubIf checks the sandbox interface spec made, through h in its netns, and returns it.
func checkSubIf(t *testing.T, h *netlink.Handle, spec netmgr.SubIfSpec, parentIndex int) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(spec.IfName)
	if err != nil {
		t.Fatalf("%s in %s: %v", spec.IfName, spec.NetNSPath, err)
	}
	at := l.Attrs()
	if l.Type() != spec.Kind || at.MTU != spec.MTU || at.Flags&net.FlagUp == 0 {
		t.Errorf("%s: got type %s mtu %d flags %s; want %s %d up", spec.IfName, l.Type(), at.MTU, at.Flags, spec.Kind, spec.MTU)
	}
	if spec.MAC != nil && !bytes.Equal(at.HardwareAddr, spec.MAC) {
		t.Errorf("%s: got mac %s; want %s", spec.IfName, at.HardwareAddr, spec.MAC)
	}
	// The parent is in another netns: its index is reported through IFLA_LINK with the
	// link-netnsid set, and for the daemon's netns seen from the sandbox's it is the same number.
	if at.ParentIndex != parentIndex {
		t.Errorf("%s: got parent index %d; want %d", spec.IfName, at.ParentIndex, parentIndex)
	}
	if mv, ok := l.(*netlink.Macvlan); ok && mv.Mode != macvlanModes[spec.Mode] {
		t.Errorf("%s: got macvlan mode %d; want %d (%s)", spec.IfName, mv.Mode, macvlanModes[spec.Mode], spec.Mode)
	}
	if iv, ok := l.(*netlink.IPVlan); ok && (iv.Mode != ipvlanModes[spec.Mode] || iv.Flag != ipvlanFlags[spec.Flag]) {
		t.Errorf("%s: got ipvlan mode %d flag %d; want %s/%s", spec.IfName, iv.Mode, iv.Flag, spec.Mode, spec.Flag)
	}
	var want []string
	for _, p := range spec.Addrs {
		want = append(want, p.String())
	}
	slices.Sort(want)
	if got := globalAddrs(t, h, l); !slices.Equal(got, want) {
		t.Errorf("%s addresses: got %v; want %v", spec.IfName, got, want)
	}
	return l
}

func checkShim(t *testing.T, spec netmgr.ShimSpec, parentIndex int) {
	t.Helper()
	l := linkByName(t, spec.Name)
	mv, ok := l.(*netlink.Macvlan)
	if !ok || mv.Mode != netlink.MACVLAN_MODE_BRIDGE || mv.ParentIndex != parentIndex ||
		!bytes.Equal(mv.HardwareAddr, spec.MAC) || mv.Flags&net.FlagUp == 0 {
		t.Fatalf("shim %s: got %s %+v; want a bridge-mode macvlan on %d with %s, up", spec.Name, l.Type(), l.Attrs(), parentIndex, spec.MAC)
	}
	if got := globalAddrs(t, hostHandle(t), l); !slices.Equal(got, []string{spec.Addr.String()}) {
		t.Errorf("shim addresses: got %v; want [%s]", got, spec.Addr)
	}
	routes, err := netlink.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range routes {
		if r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		if r.Dst.IP.To4() != nil && r.Scope != netlink.SCOPE_LINK { // IPv6 routes have no scope
			t.Errorf("shim route %s: scope %s; want link", r.Dst, r.Scope)
		}
		got = append(got, r.Dst.String())
	}
	want := []string{}
	for _, p := range spec.Routes {
		want = append(want, p.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("shim routes: got %v; want %v", got, want)
	}
}

// lanNeighbour is the MAC the LAN netns has learnt for addr ("" if none).
func lanNeighbour(t *testing.T, lanNS, addr string) string {
	t.Helper()
	h := handleIn(t, lanNS)
	neighs, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.String() == addr {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// TestParentNotEthernet: a parent that is not an Ethernet device (a tun device here) is
// refused by EnsureParent in one line, before any sandbox asks the kernel for a child of it
// (which it refuses with a bare EINVAL), and left as it was.
func TestParentNotEthernet(t *testing.T) {
	k := newLinux(t)
	tun := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "bth-tun0"}, Mode: netlink.TUNTAP_MODE_TUN}
	if err := netlink.LinkAdd(tun); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteLink("bth-tun0") })
	created, err := k.EnsureParent(netmgr.ParentSpec{Name: "bth-tun0"})
	if want := "parent bth-tun0 is not an Ethernet device (link/none): macvlan and ipvlan need one"; err == nil || err.Error() != want || created {
		t.Errorf("EnsureParent(tun): got %v, %v; want false, %s", created, err, want)
	}
	if linkByName(t, "bth-tun0").Attrs().Flags&net.FlagUp != 0 {
		t.Errorf("tun parent set up although refused")
	}
}

// TestVLANParent runs where the kernel has the 8021q module; elsewhere it says so in one
// line and skips (the request is checked by TestBuildParent).
func TestVLANParent(t *testing.T) {
	k := newLinux(t)
	parent, _ := lanRig(t, k)
	spec := netmgr.ParentSpec{Name: parent + ".20", Link: parent, VLAN: 20}
	t.Cleanup(func() { k.DeleteLink(spec.Name) })
	created, err := k.EnsureParent(spec)
	if err != nil && strings.Contains(err.Error(), "8021q kernel module") {
		t.Skip("802.1q VLAN parent not tested: this kernel lacks the 8021q module")
	}
	if err != nil || !created {
		t.Fatalf("EnsureParent(%s): got %v, %v; want true, nil", spec.Name, created, err)
	}
	v, ok := linkByName(t, spec.Name).(*netlink.Vlan)
	if !ok || v.VlanId != 20 || v.ParentIndex != linkByName(t, parent).Attrs().Index || v.Flags&net.FlagUp == 0 {
		t.Errorf("vlan: got %+v; want id 20 on %s, up", v, parent)
	}
	if created, err := k.EnsureParent(spec); err != nil || created {
		t.Errorf("second EnsureParent: got %v, %v; want false, nil", created, err)
	}
	if _, err := k.EnsureParent(netmgr.ParentSpec{Name: "bth-eth9.20", Link: "bth-eth9", VLAN: 20}); err == nil ||
		!strings.Contains(err.Error(), "parent interface bth-eth9 not found") {
		t.Errorf("VLAN on a missing link: got %v; want the link named", err)
	}
}

// TestIPVlan runs where the kernel has the ipvlan module; elsewhere it says so in one
// line and skips (the requests are checked by TestBuildSubIf).
func TestIPVlan(t *testing.T) {
	k := newLinux(t)
	parent, lanNS := lanRig(t, k)
	sb := "/run/netns/bth-iv1"
	if err := k.CreateNetNS(sb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteNetNS(sb) })
	h := handleIn(t, sb)
	for _, mode := range []string{"l2", "l3", "l3s"} {
		spec := netmgr.SubIfSpec{NetNSPath: sb, Parent: parent, Kind: "ipvlan", Mode: mode, Flag: "bridge", IfName: "eth0",
			MTU: 1400, Addrs: prefixes("10.97.0.3/24")}
		err := k.AddSubIf(spec)
		if err != nil && strings.Contains(err.Error(), "ipvlan kernel module") {
			t.Skip("ipvlan not tested: this kernel lacks the ipvlan module")
		}
		if err != nil {
			t.Fatalf("AddSubIf ipvlan %s: %v", mode, err)
		}
		checkSubIf(t, h, spec, linkByName(t, parent).Attrs().Index)
		if mode == "l2" {
			ping(t, sb, "10.97.0.254")
			ping(t, lanNS, "10.97.0.3")
		}
	}
	if err := k.DeleteLinkIn(sb, "eth0"); err != nil {
		t.Fatal(err)
	}
}
