package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/testns"
)

// The "physical LAN" of the macvlan and ipvlan tests (issue 19). The test's netns is the
// host; netns lanNS is the rest of the LAN, joined to the host by a veth pair whose host end,
// lanParent, is what a host's eth0 is to a real LAN: the parent of the networks. In lanNS the
// other end (eth0) holds a LAN host's address and the router's (the networks' --gateway), and
// lo holds lanBeyond, an address past the router that only a default route via it reaches.
const (
	lanNS      = "lan"
	lanParent  = "lan0"
	lanSubnet  = "192.168.50.0/24"
	lanRouter  = "192.168.50.1"
	lanHost    = "192.168.50.2"
	lanHostOwn = "192.168.50.3" // the host's own address on lanParent, where a test gives it one
	lanBeyond  = "203.0.113.1"
)

// lan is the rig of one test: its daemon (started) and the LAN side.
type lan struct {
	t *testing.T
	d *daemon
}

// newLAN starts a daemon and builds the LAN around the test's netns. Its cleanup removes
// the daemon's sandboxes and networks first (while the parent still exists, as on a real
// host), then the veth pair and lanNS, before the daemon's own cleanup checks that the
// namespace is left as found.
func newLAN(t *testing.T, daemonArgs ...string) *lan {
	t.Helper()
	d := newDaemon(t)
	d.start(daemonArgs...)
	testns.NewNetNS(t, lanNS)
	l := &lan{t: t, d: d}
	t.Cleanup(func() {
		d.removeAll()
		exec.Command("ip", "link", "del", lanParent).Run()
	})
	run(t, "ip", "link", "add", lanParent, "type", "veth", "peer", "name", "eth0", "netns", lanNS)
	run(t, "ip", "link", "set", lanParent, "up")
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "eth0", "up"},
		{"addr", "add", lanRouter + "/24", "dev", "eth0"},
		{"addr", "add", lanHost + "/24", "dev", "eth0"},
		{"addr", "add", lanBeyond + "/32", "dev", "lo"},
	} {
		l.lanIP(args...)
	}
	return l
}

// lanIP runs `ip -n lan ARGS` and fails the test if it fails.
func (l *lan) lanIP(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", lanNS}, args...)...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip -n %s %s: %v\n%s", lanNS, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// neighMAC is the MAC lanNS's neighbour table holds for addr on dev ("" if none), after
// pinging addr from lanNS so that the entry is fresh.
func (l *lan) neighMAC(dev, addr string) string {
	l.t.Helper()
	out := l.lanIP("neigh", "show", addr, "dev", dev)
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

// waitPing pings addr from ns until it answers (a new macvlan's first echo can wait for
// ARP and for its link to come up), for up to 5 s.
func waitPing(t *testing.T, ns, addr string) {
	t.Helper()
	waitFor(t, 5*time.Second, "ping "+addr+" from "+ns, func() error { return ping(t, ns, addr) })
}

// hostPing pings addr from the test's netns (the host itself).
func hostPing(addr string) error {
	out, err := exec.Command("ping", "-c1", "-W1", addr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from the host: %v: %s", addr, err, out)
	}
	return nil
}

// linkExists reports whether link name exists in the test's netns.
func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// linksWithPrefix lists the links of the test's netns whose names start with prefix.
func linksWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, prefix) {
			out = append(out, i.Name)
		}
	}
	return out
}

// probeModule tries to make a link of kind (vlan: 8021q; ipvlan: ipvlan) on lanParent and
// returns the module's name and ip's error output ("" when the kernel has the module).
func probeModule(t *testing.T, kind string) (module, failed string) {
	t.Helper()
	module = map[string]string{"vlan": "8021q", "ipvlan": "ipvlan"}[kind]
	args := []string{"link", "add", "link", lanParent, "name", "probe" + kind, "type", kind}
	if kind == "vlan" {
		args = append(args, "id", "4000")
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return module, strings.TrimSpace(string(out))
	}
	run(t, "ip", "link", "del", "probe"+kind)
	return module, ""
}

// hasModule reports whether the kernel can make links of kind.
func (l *lan) hasModule(kind string) bool {
	l.t.Helper()
	_, failed := probeModule(l.t, kind)
	return failed == ""
}

// needModule skips the test, with one line naming the module, when the kernel cannot make
// a link of kind. Only the VLAN and ipvlan tests call it: this machine's kernel has
// neither module, CI's may.
func (l *lan) needModule(kind string) {
	l.t.Helper()
	if module, failed := probeModule(l.t, kind); failed != "" {
		l.t.Skipf("%s kernel module missing (ip link add type %s: %s): not run on this kernel", module, kind, failed)
	}
}

// simulateReboot is what a reboot does to berth's world after a kill -9: every kernel object
// goes (the sandboxes' netns pins on the /run/netns tmpfs, the links berth made on the host,
// the nftables rules) and so does the exec root (d.root here: its runtime files and the UTS
// pins), while the state on disk, /etc/netns and the LAN stay. The host's own links that
// stay are lo and those named in keep (lanParent: a NIC comes back with the machine).
func (l *lan) simulateReboot(keep ...string) {
	t, d := l.t, l.d
	t.Helper()
	d.kill()
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if e.Name() == lanNS {
			continue
		}
		p := filepath.Join("/run/netns", e.Name())
		syscall.Unmount(p, syscall.MNT_DETACH)
		os.Remove(p)
	}
	uts := filepath.Join(d.root, "uts")
	if entries, err := os.ReadDir(uts); err == nil {
		for _, e := range entries {
			syscall.Unmount(filepath.Join(uts, e.Name()), syscall.MNT_DETACH)
		}
	}
	syscall.Unmount(uts, syscall.MNT_DETACH)
	for _, name := range []string{"uts", "sandboxes", "intents", "dns-clean"} {
		if err := os.RemoveAll(filepath.Join(d.root, name)); err != nil {
			t.Fatalf("reboot: %v", err)
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name != "lo" && !contains(keep, i.Name) {
			// A veth's peer goes with it: the second delete of a pair fails, which is fine.
			exec.Command("ip", "link", "del", i.Name).Run()
		}
	}
	for _, fam := range []string{"ip", "ip6", "bridge", "inet"} {
		exec.Command("nft", "delete", "table", fam, "berth").Run()
	}
}
