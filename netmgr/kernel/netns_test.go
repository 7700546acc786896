package kernel

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/internal/nsutil"
	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestNetNSPinning(t *testing.T) {
	k := newLinux(t)
	const a, b, c = "/run/netns/bth-pa", "/run/netns/bth-pb", "/run/netns/bth-pc"
	t.Cleanup(func() {
		for _, p := range []string{a, b, c} {
			k.DeleteNetNS(p)
		}
	})
	if k.NetNSExists(a) {
		t.Fatalf("NetNSExists(%s) before creation: got true", a)
	}
	// A leftover plain file (crash between create and mount) is reused.
	if err := os.WriteFile(a, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if k.NetNSExists(a) {
		t.Errorf("NetNSExists on a plain file: got true")
	}
	if err := k.CreateNetNS(a); err != nil {
		t.Fatal(err)
	}
	if err := k.CreateNetNS(c); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := k.PinNetNS(b, a); err != nil {
			t.Fatal(err)
		}
	}
	if same, err := nsutil.Same(a, b); err != nil || !same {
		t.Errorf("Same(%s, %s) after PinNetNS: got %v, %v; want true", a, b, same, err)
	}
	if err := k.PinNetNS(b, c); err == nil {
		t.Errorf("PinNetNS over another netns: got nil error")
	}
	// The parent directory became a shared mount point, as with iproute2.
	if info := mountInfo(t, "/run/netns"); !slices.ContainsFunc(info, func(s string) bool { return strings.HasPrefix(s, "shared:") }) {
		t.Errorf("/run/netns mount: got optional fields %v; want shared:N", info)
	}
	// A pin stacked twice (by hand) is fully removed.
	if err := unix.Mount(a, b, "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := k.DeleteNetNS(b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after DeleteNetNS: got %v; want not exist", b, err)
	}
	if !k.NetNSExists(a) {
		t.Errorf("NetNSExists(%s) after unpinning its copy: got false", a)
	}
	if err := k.CreateNetNS("/run/netns/missing-dir/x/y"); err != nil {
		t.Errorf("CreateNetNS in a new directory: %v", err)
	}
	if err := k.DeleteNetNS("/run/netns/missing-dir/x/y"); err != nil {
		t.Error(err)
	}
	// x was made a (bind) mount point on itself to be shared.
	if err := unix.Unmount("/run/netns/missing-dir/x", unix.MNT_DETACH); err != nil {
		t.Error(err)
	}
	if err := os.RemoveAll("/run/netns/missing-dir"); err != nil {
		t.Error(err)
	}
}

// mountInfo returns the optional fields (shared:N, master:N) of the mount at dir.
func mountInfo(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && f[4] == dir {
			fields = nil // the last mount on dir is the visible one
			for _, opt := range f[6:] {
				if opt == "-" {
					break
				}
				fields = append(fields, opt)
			}
		}
	}
	return fields
}

func TestLinkNamesRouteDsts(t *testing.T) {
	k := newLinux(t)
	br := netmgr.BridgeSpec{Name: "bth-br2", Addrs: prefixes("10.97.0.1/24", "fd00:97::1/64")}
	if err := k.EnsureBridge(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteLink(br.Name) })
	// A default route must not be reported.
	def := &netlink.Route{LinkIndex: linkByName(t, br.Name).Attrs().Index, Gw: netip.MustParseAddr("10.97.0.254").AsSlice()}
	if err := netlink.RouteAdd(def); err != nil {
		t.Fatal(err)
	}

	names, err := k.LinkNames()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "lo") || !slices.Contains(names, br.Name) {
		t.Errorf("LinkNames: got %v; want lo and %s among them", names, br.Name)
	}
	dsts, err := k.RouteDsts()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dsts, netip.MustParsePrefix("10.97.0.0/24")) {
		t.Errorf("RouteDsts: got %v; want 10.97.0.0/24 among them", dsts)
	}
	for _, p := range dsts {
		if p.Bits() == 0 || p != p.Masked() {
			t.Errorf("RouteDsts: got %s; want masked, non-default prefixes", p)
		}
	}
	t.Logf("RouteDsts: %v", dsts)
}

// TestPinSelf checks that "/proc/self/ns/net" pins the netns goroutines run in.
func TestPinSelf(t *testing.T) {
	k := newLinux(t)
	const p = "/run/netns/bth-self"
	t.Cleanup(func() { k.DeleteNetNS(p) })
	for range 2 {
		if err := k.PinNetNS(p, "/proc/self/ns/net"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if same, err := nsutil.Same(p, "/proc/thread-self/ns/net"); err != nil || !same {
		t.Errorf("pinned /proc/self/ns/net: got same %v, err %v; want this thread's netns", same, err)
	}
}

// TestNetNSPool: with a pool, CreateNetNS pins netns made ahead (each a new one, lo up),
// the pool refills once kicked, and StopNetNSPool frees the ones nobody took (newLinux's
// cleanup checks that nothing is left).
func TestNetNSPool(t *testing.T) {
	k := newLinux(t)
	const a, b = "/run/netns/bth-pool-a", "/run/netns/bth-pool-b"
	t.Cleanup(func() {
		k.StopNetNSPool()
		k.DeleteNetNS(a)
		k.DeleteNetNS(b)
	})
	k.StartNetNSPool(2)
	full := func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); len(k.pool.ready) < 2; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("pool holds %d netns after 5 s; want 2", len(k.pool.ready))
			}
		}
	}
	full()
	for _, p := range []string{a, b} {
		if err := k.CreateNetNS(p); err != nil {
			t.Fatal(err)
		}
		if !k.NetNSExists(p) {
			t.Fatalf("%s: no netns pinned", p)
		}
		ns, err := nsutil.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h, err := netlinkIn(ns)
		ns.Close()
		if err != nil {
			t.Fatal(err)
		}
		lo, err := h.LinkByName("lo")
		h.Close()
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: lo %v (err %v); want up", p, lo, err)
		}
	}
	if len(k.pool.ready) != 0 {
		t.Errorf("pool holds %d netns after two takes and no kick; want 0", len(k.pool.ready))
	}
	if same, err := nsutil.Same(a, b); err != nil || same {
		t.Errorf("Same(%s, %s): %v, %v; want two different netns", a, b, same, err)
	}
	k.pool.kick() // AddVeth does this after a create's veth
	full()
}
