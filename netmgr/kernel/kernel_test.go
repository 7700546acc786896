package kernel

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/internal/nsutil"
	"berth/internal/testns"
	"berth/netmgr"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { os.Exit(testns.Main(m)) }

// newLinux returns a Linux logging to the test log, and checks at the end of the test
// that the namespace looks as it did at the start.
func newLinux(t *testing.T) *Linux {
	t.Helper()
	testns.Require(t)
	before := testns.KernelSnapshot(t)
	t.Cleanup(func() {
		// A deleted netns and the veth ends in it go away in a kernel work queue.
		var after string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if after = testns.KernelSnapshot(t); after == before {
				return
			}
		}
		t.Errorf("namespace not restored:\nbefore:\n%s\nafter:\n%s", before, after)
	})
	return New(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	mac, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

// globalAddrs lists the global addresses of link as sorted strings.
func globalAddrs(t *testing.T, h *netlink.Handle, link netlink.Link) []string {
	t.Helper()
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_UNIVERSE {
			got = append(got, a.IPNet.String())
		}
	}
	slices.Sort(got)
	return got
}

func linkByName(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// hostHandle returns a netlink handle in the tests' netns.
func hostHandle(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// handleIn returns a netlink handle in the netns at path.
func handleIn(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := nsutil.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlinkIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestEnsureBridge(t *testing.T) {
	k := newLinux(t)
	spec := netmgr.BridgeSpec{
		Name:  "bth-br0",
		MAC:   mustMAC(t, "02:42:0a:63:00:01"),
		MTU:   1400,
		Addrs: prefixes("10.99.0.1/24", "fd00:99::1/64"),
	}
	t.Cleanup(func() { k.DeleteLink(spec.Name) })
	for range 2 {
		if err := k.EnsureBridge(spec); err != nil {
			t.Fatal(err)
		}
	}
	br := linkByName(t, spec.Name)
	if br.Type() != "bridge" || !bytes.Equal(br.Attrs().HardwareAddr, spec.MAC) ||
		br.Attrs().MTU != 1400 || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("bridge: got type %s mac %s mtu %d flags %s; want bridge %s 1400 up",
			br.Type(), br.Attrs().HardwareAddr, br.Attrs().MTU, br.Attrs().Flags, spec.MAC)
	}
	if got, want := globalAddrs(t, hostHandle(t), br), []string{"10.99.0.1/24", "fd00:99::1/64"}; !slices.Equal(got, want) {
		t.Errorf("addresses: got %v; want %v", got, want)
	}

	// Changing the spec converges: other global addresses go, MTU follows.
	spec.Addrs, spec.MTU = prefixes("10.99.1.1/24"), 1450
	if err := k.EnsureBridge(spec); err != nil {
		t.Fatal(err)
	}
	br = linkByName(t, spec.Name)
	if got, want := globalAddrs(t, hostHandle(t), br), []string{"10.99.1.1/24"}; !slices.Equal(got, want) {
		t.Errorf("addresses after change: got %v; want %v", got, want)
	}
	if br.Attrs().MTU != 1450 {
		t.Errorf("mtu after change: got %d; want 1450", br.Attrs().MTU)
	}

	// A port with a lower MAC joins and leaves: the bridge keeps its MAC.
	nsPath := "/run/netns/bth-mac"
	if err := k.CreateNetNS(nsPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteNetNS(nsPath) })
	veth := netmgr.VethSpec{NetNSPath: nsPath, HostName: "bth-v-mac", Bridge: spec.Name, IfName: "eth0"}
	if err := k.AddVeth(veth); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetHardwareAddr(linkByName(t, veth.HostName), mustMAC(t, "02:00:00:00:00:01")); err != nil {
		t.Fatal(err)
	}
	if got := linkByName(t, spec.Name).Attrs().HardwareAddr; !bytes.Equal(got, spec.MAC) {
		t.Errorf("bridge mac with a port: got %s; want %s", got, spec.MAC)
	}
	if err := k.DeleteLink(veth.HostName); err != nil {
		t.Fatal(err)
	}
	if got := linkByName(t, spec.Name).Attrs().HardwareAddr; !bytes.Equal(got, spec.MAC) {
		t.Errorf("bridge mac after the port left: got %s; want %s", got, spec.MAC)
	}
	if err := k.EnsureBridge(netmgr.BridgeSpec{Name: "lo"}); err == nil {
		t.Error("EnsureBridge on lo (not a bridge): got nil error")
	}
}
