package integration

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Issue 19: VLAN parents and ipvlan networks on the "physical LAN" of macvlan_rig_test.go.
// They need the 8021q and ipvlan modules: where the kernel lacks one they skip with one line
// naming it.

// TestMacvlanVLAN: -o parent=lan0.20 makes the 802.1Q sub-interface and its traffic leaves
// tagged: the LAN's VLAN 20 device holds the sandbox's neighbour entry, the untagged device
// none. network rm deletes the sub-interface berth made and keeps one it was given; a second
// network on the same VLAN is refused. Needs the 8021q module.
func TestMacvlanVLAN(t *testing.T) {
	l := newLAN(t)
	d := l.d
	if !l.hasModule("vlan") {
		// Without 8021q the create is refused in one line that names the module, and
		// leaves nothing behind.
		d.fails("802.1q VLANs need the 8021q kernel module", "network", "create", "-d", "macvlan", "--subnet", "192.168.60.0/24", "-o", "parent="+lanParent+".20", "v20")
		if linkExists(lanParent+".20") || strings.Contains(d.must("network", "ls"), "v20") {
			t.Errorf("a refused VLAN network left %s or its record", lanParent+".20")
		}
	}
	l.needModule("vlan")
	l.lanIP("link", "add", "link", "eth0", "name", "eth0.20", "type", "vlan", "id", "20")
	l.lanIP("link", "set", "eth0.20", "up")
	l.lanIP("addr", "add", "192.168.60.1/24", "dev", "eth0.20")
	l.lanIP("addr", "add", "192.168.60.2/24", "dev", "eth0.20")
	d.must("network", "create", "-d", "macvlan", "--subnet", "192.168.60.0/24", "--gateway", "192.168.60.1",
		"--aux-address", "lanhost=192.168.60.2", "-o", "parent="+lanParent+".20", "v20")
	vlan := lanParent + ".20"
	if link := linkIn(t, "", vlan); !strings.Contains(link, "vlan protocol 802.1Q id 20") || !strings.Contains(link, "@"+lanParent) {
		t.Fatalf("%s: %q, want VLAN 20 on %s", vlan, link, lanParent)
	}
	d.fails("is already using parent interface "+vlan, "network", "create", "-d", "macvlan", "--subnet", "192.168.61.0/24", "-o", "parent="+vlan, "v20b")
	d.must("sandbox", "create", "--name", "web", "--network", "v20")
	webIP := d.ip("web", "v20")
	mac := d.inspectSandbox("web").Networks["v20"].MacAddress
	waitPing(t, "web", "192.168.60.2")
	if err := ping(t, lanNS, webIP); err != nil {
		t.Error(err)
	}
	if got := l.neighMAC("eth0.20", webIP); got != mac {
		t.Errorf("LAN VLAN 20 neighbour %s at %q, want %s", webIP, got, mac)
	}
	if got := l.neighMAC("eth0", webIP); got != "" {
		t.Errorf("untagged LAN device has a neighbour entry for %s (%s): the traffic left untagged", webIP, got)
	}
	if got := defaultRoute(t, "web"); !strings.HasPrefix(got, "default via 192.168.60.1 dev eth0") {
		t.Errorf("default route %q, want via 192.168.60.1", got)
	}
	d.must("sandbox", "rm", "-f", "web")
	d.must("network", "rm", "v20")
	if linkExists(vlan) {
		t.Errorf("%s (made by berth) left after network rm", vlan)
	}
	// A VLAN sub-interface the admin made is used as it is and kept.
	run(t, "ip", "link", "add", "link", lanParent, "name", lanParent+".30", "type", "vlan", "id", "30")
	t.Cleanup(func() { exec.Command("ip", "link", "del", lanParent+".30").Run() })
	d.must("network", "create", "-d", "macvlan", "--subnet", "192.168.70.0/24", "-o", "parent="+lanParent+".30", "v30")
	d.must("network", "rm", "v30")
	if !linkExists(lanParent + ".30") {
		t.Errorf("%s.30 (the admin's) deleted by network rm", lanParent)
	}
}

// ipvlanNet makes an ipvlan network on the LAN's parent and two sandboxes, web and db, on it,
// and checks what every ipvlan mode shares: eth0 is an ipvlan in that mode with the
// parent's MAC, the LAN reaches each sandbox at its own address (at the parent's MAC),
// the two resolve each other.
func ipvlanNet(t *testing.T, l *lan, mode, subnet string, extra ...string) (webIP, dbIP string) {
	t.Helper()
	d := l.d
	args := append([]string{"network", "create", "-d", "ipvlan", "--subnet", subnet, "-o", "parent=" + lanParent,
		"-o", "ipvlan_mode=" + mode}, extra...)
	d.must(append(args, "ipv")...)
	d.must("sandbox", "create", "--name", "web", "--network", "ipv")
	d.must("sandbox", "create", "--name", "db", "--network", "ipv", "--network-alias", "bee")
	webIP, dbIP = d.ip("web", "ipv"), d.ip("db", "ipv")
	parentMAC := macOf(t, "", lanParent)
	for _, s := range []string{"web", "db"} {
		if link := linkIn(t, s, "eth0"); !strings.Contains(link, "ipvlan  mode "+mode) && !strings.Contains(link, "ipvlan mode "+mode) {
			t.Errorf("%s's eth0: %s, want ipvlan mode %s", s, link, mode)
		}
		if got := macOf(t, s, "eth0"); got != parentMAC {
			t.Errorf("%s's eth0 MAC %s, want the parent's %s", s, got, parentMAC)
		}
	}
	waitPing(t, "web", lanHost)
	for _, ip := range []string{webIP, dbIP} {
		waitPing(t, lanNS, ip)
	}
	if err := ping(t, "web", dbIP); err != nil {
		t.Error(err)
	}
	checkNames(t, "web", "db", dbIP, "ipv")
	if r := dig(t, "web", "bee"); !slices.Equal(r.values("A"), []string{dbIP}) {
		t.Errorf("dig bee from web: %v, want %s", r.answers, dbIP)
	}
	return webIP, dbIP
}

// TestIpvlanL2: ipvlan l2 sandboxes are LAN hosts at the parent's MAC, with the default
// route via the gateway; network rm keeps the parent. Needs the ipvlan module.
func TestIpvlanL2(t *testing.T) {
	l := newLAN(t)
	if !l.hasModule("ipvlan") {
		// The network needs nothing of the module; a sandbox on it is refused in one line
		// that names it, and leaves nothing behind.
		l.d.must("network", "create", "-d", "ipvlan", "--subnet", lanSubnet, "-o", "parent="+lanParent, "ipv")
		l.d.fails("ipvlan needs the ipvlan kernel module", "sandbox", "create", "--name", "web", "--network", "ipv")
		if left := l.d.must("sandbox", "ls", "-q"); left != "" {
			t.Errorf("a refused ipvlan sandbox left %q", left)
		}
	}
	l.needModule("ipvlan")
	webIP, _ := ipvlanNet(t, l, "l2", lanSubnet, "--gateway", lanRouter, "--aux-address", "lanhost="+lanHost)
	if got := l.neighMAC("eth0", webIP); got != macOf(t, "", lanParent) {
		t.Errorf("LAN neighbour %s at %q, want the parent's MAC", webIP, got)
	}
	if got := defaultRoute(t, "web"); !strings.HasPrefix(got, "default via "+lanRouter+" dev eth0") {
		t.Errorf("default route %q, want via %s", got, lanRouter)
	}
	if err := ping(t, "web", lanBeyond); err != nil {
		t.Errorf("past the router: %v", err)
	}
	l.d.must("sandbox", "rm", "-f", "web", "db")
	l.d.must("network", "rm", "ipv")
	if !linkExists(lanParent) {
		t.Errorf("parent %s deleted by network rm", lanParent)
	}
}

// TestIpvlanL3: ipvlan l3 routes instead of bridging: the LAN routes the network's subnet
// via the host's own address on the parent, and the sandboxes' traffic leaves through the
// host's routing table. Needs the ipvlan module.
func TestIpvlanL3(t *testing.T) {
	l := newLAN(t)
	l.needModule("ipvlan")
	run(t, "ip", "addr", "add", lanHostOwn+"/24", "dev", lanParent)
	l.lanIP("route", "add", "10.94.0.0/24", "via", lanHostOwn)
	ipvlanNet(t, l, "l3", "10.94.0.0/24")
	if got := defaultRoute(t, "web"); !strings.HasPrefix(got, "default") || !strings.Contains(got, "dev eth0") {
		t.Errorf("default route %q, want one through eth0", got)
	}
}
