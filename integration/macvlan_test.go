package integration

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/api"
)

// Issue 19: macvlan and ipvlan networks on the "physical LAN" of macvlan_rig_test.go. This
// kernel has macvlan but neither 8021q nor ipvlan: the VLAN and ipvlan tests
// (macvlan_vlan_test.go) skip here with one line naming the module, and run where the
// kernel has it. Restarts, kill -9 and reboots are in macvlan_restart_test.go.

// mvNetwork is `berth network inspect NAME`.
func (d *daemon) mvNetwork(name string) api.Network {
	d.t.Helper()
	var out []api.Network
	if err := json.Unmarshal([]byte(d.must("network", "inspect", name)), &out); err != nil || len(out) != 1 {
		d.t.Fatalf("network inspect %s: %v (%d results)", name, err, len(out))
	}
	return out[0]
}

// linkIn is `ip -d -o link show IFNAME` inside netns ns (ns "" is the test's own), or ""
// if there is no such link.
func linkIn(t *testing.T, ns, ifName string) string {
	t.Helper()
	args := []string{"-d", "-o", "link", "show", ifName}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// macOf is the MAC of ifName in netns ns (ns "" is the test's own).
func macOf(t *testing.T, ns, ifName string) string {
	t.Helper()
	args := []string{"-o", "link", "show", ifName}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	f := strings.Fields(string(out))
	for i := 0; err == nil && i+1 < len(f); i++ {
		if f[i] == "link/ether" {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC for %s in %q: %v %s", ifName, ns, err, out)
	return ""
}

// defaultRoute is `ip route show default` in sandbox ns, trimmed.
func defaultRoute(t *testing.T, ns string) string {
	t.Helper()
	out, err := inNS(t, ns, "ip", "-4", "route", "show", "default")
	if err != nil {
		t.Fatalf("ip route in %s: %v %s", ns, err, out)
	}
	return strings.TrimSpace(out)
}

// checkNames checks that from sandbox ns, name resolves to ip through 127.0.0.11 (dig and
// getent) and ip's PTR is name.network.
func checkNames(t *testing.T, ns, name, ip, network string) {
	t.Helper()
	if r := dig(t, ns, name); r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{ip}) {
		t.Errorf("dig %s from %s: %s %v, want %s\n%s", name, ns, r.status, r.answers, ip, r.raw)
	}
	if out, err := inNS(t, ns, "getent", "hosts", name); err != nil || !strings.HasPrefix(out, ip+" ") {
		t.Errorf("getent hosts %s in %s: %v %q, want %s", name, ns, err, out, ip)
	}
	rev, _ := dns.ReverseAddr(ip)
	want := rev + " 600 IN PTR " + name + "." + network + "."
	if r := dig(t, ns, "-x", ip); r.status != "NOERROR" || !slices.Equal(r.answers, []string{want}) {
		t.Errorf("dig -x %s from %s: %s %v, want %q\n%s", ip, ns, r.status, r.answers, want, r.raw)
	}
}

// TestMacvlanLAN: sandboxes on a macvlan network (bridge mode) on the LAN's parent are LAN
// hosts of their own: each reaches the LAN host and the world past the router (its default
// route), is reached from the LAN at its own address and MAC, and resolves the other by name
// and alias through 127.0.0.11; the gateway and aux addresses are never handed out; no
// bridge, veth or nftables rule is made for the network; connect adds an interface, network
// rm keeps the given parent.
func TestMacvlanLAN(t *testing.T) {
	l := newLAN(t)
	d := l.d
	u := startUpstream(t, false, "127.0.0.1:53")
	id := d.must("network", "create", "-d", "macvlan", "--subnet", lanSubnet, "--gateway", lanRouter,
		"--ip-range", "192.168.50.0/28", "--aux-address", "lanhost="+lanHost, "--aux-address", "host="+lanHostOwn,
		"-o", "parent="+lanParent, "mv")
	n := d.mvNetwork("mv")
	if n.Driver != "macvlan" || n.Options["parent"] != lanParent || n.Internal || len(n.IPAM.Config) != 1 ||
		n.IPAM.Config[0].Subnet != lanSubnet || n.IPAM.Config[0].Gateway != lanRouter {
		t.Errorf("inspect mv: driver %q options %v internal %v IPAM %+v; want macvlan, parent=%s, not internal, %s via %s",
			n.Driver, n.Options, n.Internal, n.IPAM.Config, lanParent, lanSubnet, lanRouter)
	}
	d.must("sandbox", "create", "--name", "web", "--network", "mv", "--network-alias", "alpha")
	d.must("sandbox", "create", "--name", "db", "--network", "mv", "--mac-address", "02:42:de:ad:be:ef", "--ip", "192.168.50.9")
	d.must("sandbox", "create", "--name", "cache", "--network", "mv")
	// Lowest free in the range: .0 is the subnet's, .1 the gateway, .2 and .3 aux addresses.
	webIP, dbIP, cacheIP := d.ip("web", "mv"), d.ip("db", "mv"), d.ip("cache", "mv")
	if webIP != "192.168.50.4" || dbIP != "192.168.50.9" || cacheIP != "192.168.50.5" {
		t.Errorf("addresses web %s db %s cache %s, want 192.168.50.4 (after gateway and aux), 192.168.50.9 (--ip), 192.168.50.5", webIP, dbIP, cacheIP)
	}
	// The MAC of a bridge endpoint (02:42 and the IPv4 address), or --mac-address.
	for _, s := range []struct{ name, mac string }{{"web", "02:42:c0:a8:32:04"}, {"db", "02:42:de:ad:be:ef"}, {"cache", "02:42:c0:a8:32:05"}} {
		ep := d.inspectSandbox(s.name).Networks["mv"]
		if ep.MacAddress != s.mac || macOf(t, s.name, "eth0") != s.mac {
			t.Errorf("%s: inspect MAC %q, eth0's %q; want %s", s.name, ep.MacAddress, macOf(t, s.name, "eth0"), s.mac)
		}
		if link := linkIn(t, s.name, "eth0"); !strings.Contains(link, "macvlan mode bridge") {
			t.Errorf("%s's eth0 is not a bridge-mode macvlan: %s", s.name, link)
		}
		if got := defaultRoute(t, s.name); !strings.HasPrefix(got, "default via "+lanRouter+" dev eth0") {
			t.Errorf("%s: default route %q, want via %s dev eth0", s.name, got, lanRouter)
		}
	}
	for _, s := range []struct{ name, ip, mac string }{{"web", webIP, "02:42:c0:a8:32:04"}, {"db", dbIP, "02:42:de:ad:be:ef"}} {
		waitPing(t, s.name, lanHost)
		if err := ping(t, s.name, lanBeyond); err != nil {
			t.Errorf("past the router: %v", err)
		}
		if err := ping(t, lanNS, s.ip); err != nil {
			t.Errorf("from the LAN: %v", err)
		}
		if got := l.neighMAC("eth0", s.ip); got != s.mac {
			t.Errorf("LAN neighbour table: %s at %q, want %s's own MAC %s", s.ip, got, s.name, s.mac)
		}
	}
	if err := ping(t, "web", dbIP); err != nil {
		t.Errorf("between sandboxes (bridge mode): %v", err)
	}
	checkNames(t, "web", "db", dbIP, "mv")
	checkNames(t, "db", "web", webIP, "mv")
	if r := dig(t, "db", "alpha"); !slices.Equal(r.values("A"), []string{webIP}) {
		t.Errorf("dig alpha from db: %v, want %s", r.answers, webIP)
	}
	if r := dig(t, "web", "test.example"); !slices.Equal(r.values("A"), []string{"10.11.12.13"}) || !u.got("test.example", "A") {
		t.Errorf("forwarded test.example from web: %s %v (upstream asked: %v), want 10.11.12.13", r.status, r.answers, u.got("test.example"))
	}
	if out, _ := inNS(t, "web", "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 127.0.0.11") {
		t.Errorf("web's resolv.conf:\n%s", out)
	}
	if out, _ := inNS(t, "web", "cat", "/etc/hosts"); !strings.Contains(out, webIP+"\tweb") {
		t.Errorf("web's /etc/hosts lacks %s web:\n%s", webIP, out)
	}
	// Nothing of a bridge network on the host: no bridge, no host-side veth, no rule.
	if linkExists("br-"+id[:12]) || len(linksWithPrefix(t, "bth")) != 0 {
		t.Errorf("bridge or veths made for a macvlan network: %v", linksWithPrefix(t, ""))
	}
	if rules := nftRuleset(); strings.Contains(rules, "192.168.50.") {
		t.Errorf("nftables rules name the macvlan subnet:\n%s", rules)
	}
	// -p has nothing to DNAT from on a macvlan-only sandbox.
	d.fails(`invalid publish "8080:80": network mv (macvlan) has no bridge to publish from: the sandbox is reachable at its own address on the parent's LAN`,
		"sandbox", "create", "--name", "p", "--network", "mv", "-p", "8080:80")
	// connect: eth1 of late, a macvlan too, on the LAN; disconnect removes it.
	d.must("network", "create", "--subnet", "10.95.0.0/24", "br")
	d.must("sandbox", "create", "--name", "late", "--network", "br")
	d.must("network", "connect", "mv", "late")
	lateIP := d.ip("late", "mv")
	if lateIP != "192.168.50.6" {
		t.Errorf("late on mv: %s, want 192.168.50.6", lateIP)
	}
	if link := linkIn(t, "late", "eth1"); !strings.Contains(link, "macvlan mode bridge") {
		t.Errorf("late's eth1 after connect: %q, want a macvlan", link)
	}
	waitPing(t, "late", lanHost)
	if err := ping(t, lanNS, lateIP); err != nil {
		t.Error(err)
	}
	checkNames(t, "late", "web", webIP, "mv")
	d.must("network", "disconnect", "mv", "late")
	if link := linkIn(t, "late", "eth1"); link != "" {
		t.Errorf("late's eth1 after disconnect: %s", link)
	}
	if err := ping(t, lanNS, lateIP); err == nil {
		t.Errorf("late's old address %s still answers after disconnect", lateIP)
	}
	// rm: the given parent stays, up.
	d.must("sandbox", "rm", "-f", "web", "db", "cache", "late")
	d.must("network", "rm", "mv", "br")
	if out, err := exec.Command("ip", "-o", "link", "show", lanParent).CombinedOutput(); err != nil || !strings.Contains(string(out), "UP") {
		t.Errorf("parent %s after network rm: %v %s, want it kept and up", lanParent, err, out)
	}
}

// TestMacvlanErrors: each refused create is one line, and changes nothing.
func TestMacvlanErrors(t *testing.T) {
	l := newLAN(t)
	d := l.d
	mv := []string{"network", "create", "-d", "macvlan"}
	d.must(append(mv, "--subnet", lanSubnet, "--gateway", lanRouter, "-o", "parent="+lanParent, "mv")...)
	// Another macvlan network in the same mode on the same parent is fine.
	d.must(append(mv, "--subnet", "192.168.51.0/24", "-o", "parent="+lanParent, "-o", "macvlan_mode=bridge", "mv2")...)
	before := d.must("network", "ls", "-q")
	for _, tc := range []struct {
		want string
		args []string
	}{
		{`invalid opt "parent=eth9": parent interface eth9 not found`, append(mv, "--subnet", "10.91.0.0/24", "-o", "parent=eth9", "x")},
		{`invalid subnet "192.168.50.128/25": overlaps the subnet of network mv`, append(mv, "--subnet", "192.168.50.128/25", "-o", "parent="+lanParent, "x")},
		{`invalid gateway "10.92.0.1": not in any subnet of the network`, append(mv, "--subnet", "10.91.0.0/24", "--gateway", "10.92.0.1", "-o", "parent="+lanParent, "x")},
		{`invalid opt "parent=lan0": network mv is already using parent interface lan0 in macvlan mode bridge`, append(mv, "--subnet", "10.91.0.0/24", "-o", "parent="+lanParent, "-o", "macvlan_mode=private", "x")},
		{`invalid opt "parent=lan0": network mv is already using parent interface lan0`, []string{"network", "create", "-d", "ipvlan", "--subnet", "10.91.0.0/24", "-o", "parent=" + lanParent, "x"}},
		{`invalid opt "macvlan_mode=bogus": requested macvlan mode 'bogus' is not valid, 'bridge' mode is the macvlan driver default`, append(mv, "--subnet", "10.91.0.0/24", "-o", "parent="+lanParent, "-o", "macvlan_mode=bogus", "x")},
		{`invalid opt "ipvlan_mode=l4": requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default`, []string{"network", "create", "-d", "ipvlan", "--subnet", "10.91.0.0/24", "-o", "ipvlan_mode=l4", "x"}},
		{`invalid opt "ipvlan_flag=open": requested ipvlan flag 'open' is not valid, 'bridge' is the ipvlan driver default`, []string{"network", "create", "-d", "ipvlan", "--subnet", "10.91.0.0/24", "-o", "ipvlan_flag=open", "x"}},
		{`invalid opt "bogus_key=1": not an option of the macvlan driver`, append(mv, "--subnet", "10.91.0.0/24", "-o", "parent="+lanParent, "-o", "bogus_key=1", "x")},
		{`invalid opt "bogus_key=1": not an option of the ipvlan driver`, []string{"network", "create", "-d", "ipvlan", "--subnet", "10.91.0.0/24", "-o", "bogus_key=1", "x"}},
		{`invalid opt "berth.host_shim=true": the host shim is a macvlan: an ipvlan child shares the parent's MAC, use a macvlan network`, []string{"network", "create", "-d", "ipvlan", "--subnet", "10.91.0.0/24", "-o", "berth.host_shim=true", "x"}},
		{`invalid opt "berth.host_shim=true": the host shim reaches sandboxes in macvlan mode bridge only, not private`, append(mv, "--subnet", "10.91.0.0/24", "-o", "macvlan_mode=private", "-o", "berth.host_shim=true", "x")},
	} {
		d.fails(tc.want, tc.args...)
	}
	// An ipvlan network on a parent of its own is made without the ipvlan module (nothing
	// is created in the kernel before a sandbox joins); a second one on that parent and a
	// --mac-address on it are refused.
	run(t, "ip", "link", "add", "lan1", "type", "veth", "peer", "name", "lan1p")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "lan1").Run() })
	d.must("network", "create", "-d", "ipvlan", "--subnet", "10.98.0.0/24", "-o", "parent=lan1", "ipv")
	d.fails(`invalid opt "parent=lan1": network ipv is already using parent interface lan1`, "network", "create", "-d", "ipvlan", "--subnet", "10.99.0.0/24", "-o", "parent=lan1", "x")
	d.fails(`invalid mac-address "02:42:00:00:00:01": an ipvlan interface has the MAC address of its parent lan1`,
		"sandbox", "create", "--name", "x", "--network", "ipv", "--mac-address", "02:42:00:00:00:01")
	d.must("network", "rm", "ipv")
	if after := d.must("network", "ls", "-q"); after != before {
		t.Errorf("refused creates changed the networks:\n%s\nwant\n%s", after, before)
	}
	if linkExists("eth9") || len(linksWithPrefix(t, "bmv-")) != 0 {
		t.Errorf("refused creates left links: %v", linksWithPrefix(t, ""))
	}
}

// TestMacvlanInternal: without -o parent, the network is internal on a parent berth makes
// (one end of a veth pair): its sandboxes reach each other and resolve each other's names,
// have no default route, and network rm removes the parent.
func TestMacvlanInternal(t *testing.T) {
	d := newDaemon(t)
	d.start()
	id := d.must("network", "create", "-d", "macvlan", "--subnet", "10.93.0.0/24", "inner")
	n := d.mvNetwork("inner")
	if !n.Internal || n.Driver != "macvlan" {
		t.Errorf("inspect inner: internal %v driver %q, want an internal macvlan network", n.Internal, n.Driver)
	}
	parent := "bmv-" + id[:10]
	if out, err := exec.Command("ip", "-o", "link", "show", parent).CombinedOutput(); err != nil || !strings.Contains(string(out), "UP") {
		t.Fatalf("internal parent %s: %v %s, want it up", parent, err, out)
	}
	d.must("sandbox", "create", "--name", "web", "--network", "inner")
	d.must("sandbox", "create", "--name", "db", "--network", "inner", "--network-alias", "bee")
	webIP, dbIP := d.ip("web", "inner"), d.ip("db", "inner")
	for _, s := range []string{"web", "db"} {
		if got := defaultRoute(t, s); got != "" {
			t.Errorf("%s on an internal network has a default route: %s", s, got)
		}
		if link := linkIn(t, s, "eth0"); !strings.Contains(link, "macvlan mode bridge") {
			t.Errorf("%s's eth0: %s, want a macvlan", s, link)
		}
	}
	waitPing(t, "web", dbIP)
	if err := ping(t, "db", webIP); err != nil {
		t.Error(err)
	}
	checkNames(t, "web", "db", dbIP, "inner")
	checkNames(t, "db", "web", webIP, "inner")
	if r := dig(t, "web", "bee"); !slices.Equal(r.values("A"), []string{dbIP}) {
		t.Errorf("dig bee from web: %v, want %s", r.answers, dbIP)
	}
	d.must("sandbox", "rm", "-f", "web", "db")
	d.must("network", "rm", "inner")
	if left := linksWithPrefix(t, "bmv-"); len(left) != 0 {
		t.Errorf("internal parent left after network rm: %v", left)
	}
}

// shimRoutes is the set of destinations routed through the shim (its main-table routes).
func shimRoutes(t *testing.T, shim string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route", "show", "dev", shim).CombinedOutput()
	if err != nil {
		t.Fatalf("ip route show dev %s: %v %s", shim, err, out)
	}
	var dst []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			dst = append(dst, strings.TrimSuffix(f[0], "/32"))
		}
	}
	slices.Sort(dst)
	return dst
}

// TestMacvlanHostShim: the host, with its own address on the parent, cannot reach a
// macvlan sandbox (the kernel never passes a macvlan child's frames to its parent: the
// limitation README documents); with -o berth.host_shim=true it can, through a macvlan of
// its own on the parent with a reserved address and a /32 route per sandbox address, kept
// exact on create, connect, disconnect and rm, and removed on network rm.
func TestMacvlanHostShim(t *testing.T) {
	l := newLAN(t)
	d := l.d
	run(t, "ip", "addr", "add", lanHostOwn+"/24", "dev", lanParent)
	common := []string{"network", "create", "-d", "macvlan", "--subnet", lanSubnet, "--gateway", lanRouter,
		"--aux-address", "lanhost=" + lanHost, "--aux-address", "host=" + lanHostOwn, "-o", "parent=" + lanParent}
	d.must(append(common, "plain")...)
	d.must("sandbox", "create", "--name", "web", "--network", "plain")
	webIP := d.ip("web", "plain")
	waitPing(t, lanNS, webIP)
	if err := hostPing(webIP); err == nil {
		t.Errorf("the host reached macvlan sandbox %s through its parent %s: the documented limitation does not hold", webIP, lanParent)
	}
	d.must("sandbox", "rm", "-f", "web")
	d.must("network", "rm", "plain")

	id := d.must(append(common, "-o", "berth.host_shim=true", "mv")...)
	shim := "bsh-" + id[:11]
	if link := linkIn(t, "", shim); !strings.Contains(link, "macvlan mode bridge") || !strings.Contains(link, "@"+lanParent) {
		t.Fatalf("shim %s: %q, want a bridge-mode macvlan on %s", shim, link, lanParent)
	}
	out, _ := exec.Command("ip", "-4", "-o", "addr", "show", "dev", shim).CombinedOutput()
	f := strings.Fields(string(out))
	if len(f) < 4 || !strings.HasPrefix(f[3], "192.168.50.") || !strings.HasSuffix(f[3], "/32") {
		t.Fatalf("shim %s address: %q, want one /32 in %s", shim, out, lanSubnet)
	}
	shimAddr := strings.TrimSuffix(f[3], "/32")
	d.must("sandbox", "create", "--name", "web", "--network", "mv")
	d.must("sandbox", "create", "--name", "db", "--network", "mv")
	d.must("network", "create", "--subnet", "10.96.0.0/24", "br")
	d.must("sandbox", "create", "--name", "cache", "--network", "br")
	webIP, dbIP := d.ip("web", "mv"), d.ip("db", "mv")
	for _, ip := range []string{webIP, dbIP} {
		if ip == shimAddr || ip == lanRouter || ip == lanHost || ip == lanHostOwn {
			t.Errorf("sandbox address %s is the shim's, the gateway or an aux address", ip)
		}
	}
	if got, want := shimRoutes(t, shim), sorted(webIP, dbIP); !slices.Equal(got, want) {
		t.Errorf("shim routes %v, want %v", got, want)
	}
	waitFor(t, 5*time.Second, "host ping "+webIP+" through the shim", func() error { return hostPing(webIP) })
	if err := hostPing(dbIP); err != nil {
		t.Error(err)
	}
	d.must("network", "connect", "mv", "cache")
	cacheIP := d.ip("cache", "mv")
	if got, want := shimRoutes(t, shim), sorted(webIP, dbIP, cacheIP); !slices.Equal(got, want) {
		t.Errorf("after connect: shim routes %v, want %v", got, want)
	}
	waitFor(t, 5*time.Second, "host ping "+cacheIP+" (connected) through the shim", func() error { return hostPing(cacheIP) })
	d.must("network", "disconnect", "mv", "cache")
	d.must("sandbox", "rm", "-f", "db")
	if got, want := shimRoutes(t, shim), []string{webIP}; !slices.Equal(got, want) {
		t.Errorf("after disconnect c and rm b: shim routes %v, want %v", got, want)
	}
	// The LAN reaches the sandbox as before: the shim changes nothing for it.
	if err := ping(t, lanNS, webIP); err != nil {
		t.Error(err)
	}
	d.must("sandbox", "rm", "-f", "web", "cache")
	d.must("network", "rm", "mv", "br")
	if linkExists(shim) {
		t.Errorf("shim %s left after network rm", shim)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestMacvlanModes: in private and vepa mode the sandboxes of a parent reach the LAN but not
// each other (vepa sends their traffic to the switch, which here, a veth, does not hairpin it
// back); a passthru network's parent takes one sandbox only, whose interface has the
// parent's MAC, and the parent's MAC is as before once it leaves.
func TestMacvlanModes(t *testing.T) {
	l := newLAN(t)
	d := l.d
	create := func(mode, name string) {
		t.Helper()
		d.must("network", "create", "-d", "macvlan", "--subnet", lanSubnet, "--gateway", lanRouter,
			"--aux-address", "lanhost="+lanHost, "-o", "parent="+lanParent, "-o", "macvlan_mode="+mode, name)
	}
	for _, mode := range []string{"private", "vepa"} {
		create(mode, "mv")
		d.must("sandbox", "create", "--name", "web", "--network", "mv")
		d.must("sandbox", "create", "--name", "db", "--network", "mv")
		dbIP := d.ip("db", "mv")
		for _, s := range []string{"web", "db"} {
			if link := linkIn(t, s, "eth0"); !strings.Contains(link, "macvlan mode "+mode) {
				t.Errorf("%s: %s's eth0: %s, want macvlan mode %s", mode, s, link, mode)
			}
			waitPing(t, s, lanHost)
		}
		if err := ping(t, lanNS, dbIP); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
		if err := ping(t, "web", dbIP); err == nil {
			t.Errorf("%s: web reached db (%s) on the same parent", mode, dbIP)
		}
		d.must("sandbox", "rm", "-f", "web", "db")
		d.must("network", "rm", "mv")
	}
	parentMAC := macOf(t, "", lanParent)
	create("passthru", "pt")
	d.must("sandbox", "create", "--name", "web", "--network", "pt")
	webIP := d.ip("web", "pt")
	if link := linkIn(t, "web", "eth0"); !strings.Contains(link, "macvlan mode passthru") {
		t.Errorf("passthru: web's eth0: %s", link)
	}
	if got := macOf(t, "web", "eth0"); got != parentMAC {
		t.Errorf("passthru: web's eth0 MAC %s, want the parent's %s", got, parentMAC)
	}
	// The record has no MAC of its own (as ipvlan's): the kernel's is the parent's.
	if got := d.inspectSandbox("web").Networks["pt"].MacAddress; got != "" {
		t.Errorf("passthru: inspect MAC %q, want none (eth0 has the parent's)", got)
	}
	waitPing(t, "web", lanHost)
	waitPing(t, lanNS, webIP)
	d.fails("a passthru macvlan must be the only macvlan on its parent", "sandbox", "create", "--name", "db", "--network", "pt")
	if got := d.must("sandbox", "ls", "-q", "--filter", "name=^db$"); got != "" {
		t.Errorf("a refused second passthru sandbox is listed: %q", got)
	}
	d.must("sandbox", "rm", "-f", "web")
	d.must("network", "rm", "pt")
	if got := macOf(t, "", lanParent); got != parentMAC {
		t.Errorf("parent MAC %s after the passthru sandbox left, want %s", got, parentMAC)
	}
}
