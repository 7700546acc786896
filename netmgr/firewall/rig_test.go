package firewall_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/internal/nsutil"
	"berth/internal/testns"
	"berth/netmgr"
	"berth/netmgr/kernel"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestMain(m *testing.M) { os.Exit(testns.Main(m)) }

// rig is the test topology, inside testns' private namespace whose netns plays the
// daemon's:
//
//	fw-a (10.88.1.1/24): sandboxes a1 10.88.1.2, a2 10.88.1.3
//	fw-b (10.88.2.1/24): sandbox b1 10.88.2.2
//	fw-out0 192.0.2.1/24 ── veth ── eth0 192.0.2.2/24 in netns "out" (no route back)
//
// Every sandbox and "out" run echo servers on TCP 7000 and 7001 and UDP 7000 that answer
// "NAME PEERADDR".
type rig struct {
	ns map[string]string // name -> netns path; "" is the daemon netns
}

const (
	portEcho  = 7000
	portOther = 7001
)

func newRig(t *testing.T) *rig {
	t.Helper()
	testns.Require(t)
	k := kernel.New(slog.New(slog.DiscardHandler))
	r := &rig{ns: map[string]string{"daemon": ""}}
	bridges := []struct {
		name, gw string
		sbs      map[string]string
	}{
		{"fw-a", "10.88.1.1", map[string]string{"a1": "10.88.1.2", "a2": "10.88.1.3"}},
		{"fw-b", "10.88.2.1", map[string]string{"b1": "10.88.2.2"}},
	}
	for i, br := range bridges {
		spec := netmgr.BridgeSpec{Name: br.name, Addrs: []netip.Prefix{netip.MustParsePrefix(br.gw + "/24")},
			MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0x58, byte(i + 1), 0x01}}
		if err := k.EnsureBridge(spec); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.DeleteLink(br.name) })
		for name, ip := range br.sbs {
			path := "/run/netns/" + name
			if err := k.CreateNetNS(path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { k.DeleteNetNS(path) })
			err := k.AddVeth(netmgr.VethSpec{NetNSPath: path, HostName: "fwv-" + name, Bridge: br.name,
				IfName: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix(ip + "/24")}})
			if err != nil {
				t.Fatal(err)
			}
			// Hairpin mode, as Docker sets it without its userland proxy: see the
			// package comment.
			if err := netlink.LinkSetHairpin(linkByName(t, "fwv-"+name), true); err != nil {
				t.Fatal(err)
			}
			if err := k.SetDefaultRoutes(path, "eth0", netip.MustParseAddr(br.gw), "", netip.Addr{}); err != nil {
				t.Fatal(err)
			}
			r.ns[name] = path
		}
	}
	r.ns["out"] = r.addOutside(t, k)
	for name, path := range r.ns {
		if name != "daemon" {
			serveEcho(t, name, path)
		}
	}
	return r
}

// addOutside makes the "out" netns and its veth pair to the daemon netns.
func (r *rig) addOutside(t *testing.T, k *kernel.Linux) string {
	t.Helper()
	path := "/run/netns/out"
	if err := k.CreateNetNS(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteNetNS(path) })
	ns, err := nsutil.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "fw-out0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.DeleteLink("fw-out0") })
	host, err := netlink.LinkByName("fw-out0")
	if err != nil {
		t.Fatal(err)
	}
	hh, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	mustAddrUp(t, hh, host, "192.0.2.1/24")
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	peer, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	mustAddrUp(t, h, peer, "192.0.2.2/24")
	return path
}

func linkByName(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAddrUp(t *testing.T, h *netlink.Handle, l netlink.Link, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// serveEcho starts the echo servers of name in the netns at path until the test ends.
func serveEcho(t *testing.T, name, path string) {
	t.Helper()
	for _, port := range []int{portEcho, portOther} {
		var ln net.Listener
		err := nsutil.Do(path, func() (err error) {
			ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
			return err
		})
		if err != nil {
			t.Fatalf("listen in %s: %v", name, err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
				fmt.Fprintf(c, "%s %s\n", name, peer)
				c.Close()
			}
		}()
	}
	var pc net.PacketConn
	err := nsutil.Do(path, func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", portEcho))
		return err
	})
	if err != nil {
		t.Fatalf("listen udp in %s: %v", name, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			peer := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
			seen.record(name, peer.String())
			pc.WriteTo(fmt.Appendf(nil, "%s %s\n", name, peer), from)
		}
	}()
}

// seen records the sources each UDP server saw, for flows whose answers cannot come back.
var seen = &sources{ch: make(chan string, 100)}

type sources struct{ ch chan string }

func (s *sources) record(name, peer string) {
	select {
	case s.ch <- name + " " + peer:
	default:
	}
}

// drain forgets what was seen so far.
func (s *sources) drain() {
	for {
		select {
		case <-s.ch:
		default:
			return
		}
	}
}

// next waits briefly for the next datagram a server saw.
func (s *sources) next() string {
	select {
	case v := <-s.ch:
		return v
	case <-time.After(2 * time.Second):
		return ""
	}
}

// dial connects from the netns of from to addr ("tcp" or "udp") and returns the echo
// server's answer ("NAME PEER"), or an error if nothing answered within a short timeout.
func (r *rig) dial(from, proto, addr string) (string, error) {
	var got string
	err := nsutil.Do(r.ns[from], func() error {
		c, err := net.DialTimeout(proto+"4", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if proto == "udp" {
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
		}
		got, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(got), err
}

// reach asserts that from reaches addr and is answered with want.
func (r *rig) reach(t *testing.T, from, proto, addr, want string) {
	t.Helper()
	got, err := r.dial(from, proto, addr)
	if err != nil || got != want {
		t.Errorf("%s -> %s %s: got %q, err %v; want %q", from, proto, addr, got, err, want)
	}
}

// block asserts that from gets no answer from addr.
func (r *rig) block(t *testing.T, from, proto, addr string) {
	t.Helper()
	if got, err := r.dial(from, proto, addr); err == nil {
		t.Errorf("%s -> %s %s: got answer %q; want none", from, proto, addr, got)
	}
}

// nftList runs `nft list table FAMILY NAME` (listing only), "" if the table is absent.
func nftList(t *testing.T, family, name string) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", family, name).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file") {
			return ""
		}
		t.Fatalf("nft list table %s %s: %v\n%s", family, name, err, out)
	}
	return string(out)
}

// nftTables lists berth's tables, family by family.
func nftTables(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"ip", "ip6", "bridge"} {
		b.WriteString(nftList(t, f, "berth"))
	}
	return b.String()
}

func setSysctl(t *testing.T, path, val string) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(path, old, 0o644) })
}
