package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/api"
)

// Issue 19: restarts, kill -9 and reboots of macvlan networks on the "physical LAN" of
// macvlan_rig_test.go.

// TestMacvlanRestart: a graceful restart and a kill -9 keep every address, MAC and name of
// the macvlan sandboxes; after a kill -9 with the links deleted behind the daemon's back (a
// sandbox's eth0, the internal parent with the children on it, the shim) a start remakes
// them; after a reboot the networks come back with their parents and shim, and new
// sandboxes on them work.
func TestMacvlanRestart(t *testing.T) {
	l := newLAN(t)
	d := l.d
	run(t, "ip", "addr", "add", lanHostOwn+"/24", "dev", lanParent)
	mvID := d.must("network", "create", "-d", "macvlan", "--subnet", lanSubnet, "--gateway", lanRouter,
		"--aux-address", "lanhost="+lanHost, "--aux-address", "host="+lanHostOwn, "-o", "parent="+lanParent,
		"-o", "berth.host_shim=true", "mv")
	innerID := d.must("network", "create", "-d", "macvlan", "--subnet", "10.93.0.0/24", "inner")
	d.must("network", "create", "--subnet", "10.97.0.0/24", "br")
	shim, parent := "bsh-"+mvID[:11], "bmv-"+innerID[:10]
	d.must("sandbox", "create", "--name", "web", "--network", "mv", "--network-alias", "alpha")
	d.must("sandbox", "create", "--name", "db", "--network", "mv")
	d.must("network", "connect", "inner", "db")
	d.must("sandbox", "create", "--name", "cache", "--network", "inner")
	d.must("sandbox", "create", "--name", "ctl", "--network", "br") // a bridge sandbox: the control
	netBefore := d.must("network", "inspect", "mv", "inner")
	sbBefore := d.must("sandbox", "inspect", "web", "db", "cache")
	webIP, dbIP := d.ip("web", "mv"), d.ip("db", "mv")
	cacheIP := d.ip("cache", "inner")
	// The MAC of each sandbox's interface, by "sandbox/interface".
	ifaces := []string{"web/eth0", "db/eth0", "db/eth1", "cache/eth0"}
	macs := map[string]string{}
	for _, k := range ifaces {
		sb, ifn, _ := strings.Cut(k, "/")
		macs[k] = macOf(t, sb, ifn)
	}
	works := func(when string) {
		t.Helper()
		waitPing(t, "web", lanHost)
		waitPing(t, lanNS, dbIP)
		waitPing(t, "db", cacheIP)
		waitFor(t, 5*time.Second, when+": host ping "+webIP+" through the shim", func() error { return hostPing(webIP) })
		if got := l.neighMAC("eth0", dbIP); got != macs["db/eth0"] {
			t.Errorf("%s: LAN neighbour %s at %q, want %s", when, dbIP, got, macs["db/eth0"])
		}
		for _, k := range ifaces {
			sb, ifn, _ := strings.Cut(k, "/")
			if got := macOf(t, sb, ifn); got != macs[k] {
				t.Errorf("%s: %s MAC %s, want %s", when, k, got, macs[k])
			}
		}
		if r := dig(t, "db", "alpha"); !slices.Equal(r.values("A"), []string{webIP}) {
			t.Errorf("%s: dig alpha from db: %v, want %s", when, r.answers, webIP)
		}
		if r := dig(t, "cache", "db"); !slices.Equal(r.values("A"), []string{d.ip("db", "inner")}) {
			t.Errorf("%s: dig db from cache: %v, want db's inner address", when, r.answers)
		}
		if got, want := shimRoutes(t, shim), sorted(webIP, dbIP); !slices.Equal(got, want) {
			t.Errorf("%s: shim routes %v, want %v", when, got, want)
		}
	}
	works("before")
	for _, how := range []string{"graceful", "kill -9", "kill -9, links deleted"} {
		switch how {
		case "graceful":
			d.stop()
		case "kill -9":
			d.kill()
		default:
			d.kill()
			// Deleting the internal parent takes the macvlans on it with it: cache's eth0, db's eth1.
			run(t, "ip", "-n", "web", "link", "del", "eth0")
			run(t, "ip", "link", "del", parent)
			run(t, "ip", "link", "del", shim)
		}
		d.start()
		if got := d.must("network", "inspect", "mv", "inner"); got != netBefore {
			t.Errorf("%s restart changed network inspect:\n%s\nwant\n%s", how, got, netBefore)
		}
		if got := d.must("sandbox", "inspect", "web", "db", "cache"); got != sbBefore {
			t.Errorf("%s restart changed sandbox inspect:\n%s\nwant\n%s", how, got, sbBefore)
		}
		works("after " + how)
	}

	// Reboot: the sandboxes go as bridge sandboxes do (their netns is gone); the networks,
	// the internal parent and the shim come back.
	l.simulateReboot(lanParent)
	d.start()
	if left := d.must("sandbox", "ls", "-q"); left != "" {
		t.Errorf("after reboot: sandboxes %q listed, want none (the control on a bridge network included)", left)
	}
	var nets []api.Network
	if err := json.Unmarshal([]byte(d.must("network", "inspect", "mv", "inner")), &nets); err != nil || len(nets) != 2 {
		t.Fatalf("after reboot: network inspect mv inner: %v", err)
	}
	if nets[0].ID != mvID || nets[0].Options["parent"] != lanParent || nets[1].ID != innerID || !nets[1].Internal {
		t.Errorf("after reboot: networks %+v", nets)
	}
	if !linkExists(parent) || !linkExists(shim) {
		t.Errorf("after reboot: internal parent %s (%v) or shim %s (%v) not remade", parent, linkExists(parent), shim, linkExists(shim))
	}
	if got := shimRoutes(t, shim); len(got) != 0 {
		t.Errorf("after reboot: shim routes %v, want none (no sandbox)", got)
	}
	d.must("sandbox", "create", "--name", "next", "--network", "mv")
	d.must("sandbox", "create", "--name", "other", "--network", "inner")
	d.must("network", "connect", "inner", "next")
	// web's address was released with web: the lowest free again.
	if got := d.ip("next", "mv"); got != webIP {
		t.Errorf("after reboot: next got %s, want %s (the lowest free)", got, webIP)
	}
	nextIP := d.ip("next", "mv")
	waitPing(t, "next", lanHost)
	waitPing(t, lanNS, nextIP)
	waitPing(t, "other", d.ip("next", "inner"))
	waitFor(t, 5*time.Second, "after reboot: host ping through the shim", func() error { return hostPing(nextIP) })
	checkNames(t, "other", "next", d.ip("next", "inner"), "inner")

	// The orphan sweep: an internal parent (with its peer) and a shim named as berth names
	// them, of no network in the store, go at the next start; the networks' own stay.
	d.kill()
	run(t, "ip", "link", "add", "bmv-0123456789", "type", "veth", "peer", "name", "bmp-0123456789")
	run(t, "ip", "link", "add", "bsh-0123456789a", "link", lanParent, "type", "macvlan", "mode", "bridge")
	d.start()
	for _, orphan := range []string{"bmv-0123456789", "bmp-0123456789", "bsh-0123456789a"} {
		if linkExists(orphan) {
			t.Errorf("orphan %s not swept", orphan)
		}
	}
	if !linkExists(parent) || !linkExists(shim) {
		t.Errorf("the sweep took the networks' own internal parent %s (%v) or shim %s (%v)", parent, linkExists(parent), shim, linkExists(shim))
	}
	waitPing(t, "other", d.ip("next", "inner"))
}
