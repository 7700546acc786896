package dnsd

import (
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"

	"berth/internal/nsutil"
	"berth/internal/testns"
)

// dig6 is dig at [fd62:6572:7468::11] inside netns ns.
func dig6(t *testing.T, ns string, args ...string) string {
	t.Helper()
	cmd := append([]string{"ip", "netns", "exec", ns, "dig", "@" + serviceAddr6.String(), "+short", "+time=2", "+tries=1"}, args...)
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return "error: " + strings.TrimSpace(string(out))
	}
	return strings.TrimSpace(string(out))
}

// nftTable lists table FAMILY berth-dns in netns ns, or "" if there is none.
func nftTable(t *testing.T, ns, family string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", family, natTable).CombinedOutput()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// TestServeV6: a served sandbox answers on [fd62:6572:7468::11]:53 over UDP and TCP, as on
// 127.0.0.11, and both tables are in place and read back as installNAT made them.
func TestServeV6(t *testing.T) {
	testns.Require(t)
	for _, fresh := range []bool{true, false} {
		name := map[bool]string{true: "dnsd-v6new", false: "dnsd-v6"}[fresh]
		nsPath, ns := sandboxNS(t, name)
		st := newFixture(t, nsPath)
		s := New(Config{Store: st, Log: testLogger(t)})
		serve := s.Serve
		if fresh {
			serve = s.ServeNew
		}
		if err := serve(sandboxRecord(t, st, clientID)); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"web"}, {"+tcp", "web"}, {"+notcp", "WWW"}} {
			if got := dig6(t, ns, args...); got != "172.30.0.3" {
				t.Errorf("%s: dig @%s %v: got %q", name, serviceAddr6, args, got)
			}
			if got := dig(t, ns, args...); got != "172.30.0.3" {
				t.Errorf("%s: dig @127.0.0.11 %v: got %q", name, args, got)
			}
		}
		v4, v6 := nftTable(t, ns, "ip"), nftTable(t, ns, "ip6")
		if strings.Count(v6, "dnat to") != 2 || strings.Count(v6, "snat to") != 2 || !strings.Contains(v6, serviceAddr6.String()) {
			t.Errorf("%s: ip6 table:\n%s\nwant the 4 rules", name, v6)
		}
		udp, tcp := s.listeners(clientID)
		want := natPorts{uint16(udp.LocalAddr().(*net.UDPAddr).Port), uint16(tcp.Addr().(*net.TCPAddr).Port)}
		if got, ok := readNATIn(t, nsPath, true); !ok || got != want {
			t.Errorf("%s: readNAT: %v %v; want %v true\n%s\n%s", name, got, ok, want, v4, v6)
		}
		s.Stop(clientID)
		if v4, v6 := nftTable(t, ns, "ip"), nftTable(t, ns, "ip6"); v4 != "" || v6 != "" {
			t.Errorf("%s: tables after Stop:\n%s\n%s\nwant none", name, v4, v6)
		}
		if out := run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", "lo"); strings.Contains(out, serviceAddr6.String()) {
			t.Errorf("%s: %s still on lo after Stop:\n%s", name, serviceAddr6, out)
		}
		s.Close()
	}
}

// readNATIn is readNAT in the netns at nsPath.
func readNATIn(t *testing.T, nsPath string, v6 bool) (natPorts, bool) {
	t.Helper()
	h, err := nsutil.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return readNAT(c, v6)
}

// TestKeepNAT6: both tables of an earlier run, with free ports, are kept as they are
// (Close and Serve again: no nftables change, the v6 sockets on the table's ports); an
// IPv4 table alone, as a daemon from before the IPv6 listener left it, is replaced by
// both.
func TestKeepNAT6(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-keep6")
	st := newFixture(t, nsPath)
	sb := sandboxRecord(t, st, clientID)
	if err := ensureNAT(nsPath, 1111, 2222); err != nil {
		t.Fatal(err)
	}
	want4, want6 := nftTable(t, ns, "ip"), nftTable(t, ns, "ip6")
	for round := range 2 {
		s := New(Config{Store: st, Log: testLogger(t)})
		if err := s.Serve(sb); err != nil {
			t.Fatal(err)
		}
		if !s.natKept(sb.ID) {
			t.Errorf("round %d: the tables of the earlier run were not kept", round)
		}
		udp6, tcp6 := s.listeners6(sb.ID)
		if udp6 == nil || udp6.LocalAddr().(*net.UDPAddr).Port != 1111 || tcp6.Addr().(*net.TCPAddr).Port != 2222 {
			t.Errorf("round %d: v6 sockets %v, %v; want the table's ports 1111 and 2222", round, udp6, tcp6)
		}
		for _, args := range [][]string{{"web"}, {"+tcp", "web"}} {
			if got := dig6(t, ns, args...); got != "172.30.0.3" {
				t.Errorf("round %d: dig6 %v: got %q", round, args, got)
			}
		}
		if got4, got6 := nftTable(t, ns, "ip"), nftTable(t, ns, "ip6"); got4 != want4 || got6 != want6 {
			t.Errorf("round %d: tables changed:\n%s\n%s\nwant\n%s\n%s", round, got4, got6, want4, want6)
		}
		s.Close() // keeps both
	}

	// The IPv4 table alone, with free ports: not what installNAT makes now, so replaced.
	run(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "ip6", natTable)
	if err := ensureNATFamilies(nsPath, 3333, 4444, false); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: st, Log: testLogger(t)})
	defer s.Close()
	if err := s.Serve(sb); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.natOf(sb.ID); n != natInstalled {
		t.Errorf("after an IPv4-only table: nat state %v; want %v (both installed afresh)", n, natInstalled)
	}
	v4, v6 := nftTable(t, ns, "ip"), nftTable(t, ns, "ip6")
	if strings.Contains(v4, "3333") || strings.Count(v6, "dnat to") != 2 || strings.Count(v6, "snat to") != 2 {
		t.Errorf("tables after an IPv4-only one:\n%s\n%s\nwant both, on new ports", v4, v6)
	}
	if got := dig6(t, ns, "web"); got != "172.30.0.3" {
		t.Errorf("dig6 web after replacing an IPv4-only table: got %q", got)
	}
}

// TestV6Off: with IPv6 off on the netns's lo the server serves 127.0.0.11 alone, with no
// error, and installs the IPv4 table only.
func TestV6Off(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-v6off")
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1")
	st := newFixture(t, nsPath)
	var logs strings.Builder
	s := New(Config{Store: st, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	defer s.Close()
	if err := s.ServeNew(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	if udp6, tcp6 := s.listeners6(clientID); udp6 != nil || tcp6 != nil {
		t.Errorf("IPv6 sockets with IPv6 off: %v %v", udp6, tcp6)
	}
	if got := dig(t, ns, "web"); got != "172.30.0.3" {
		t.Errorf("dig @127.0.0.11 web: got %q", got)
	}
	if v6 := nftTable(t, ns, "ip6"); v6 != "" {
		t.Errorf("ip6 table with IPv6 off:\n%s", v6)
	}
	if n := strings.Count(logs.String(), "dns serving ipv4 only"); n != 1 {
		t.Errorf("%d 'ipv4 only' lines; want 1:\n%s", n, logs.String())
	}
	t.Log(logs.String())
}

// listeners6 returns the IPv6 sockets of a served sandbox, nil without them.
func (s *Server) listeners6(sandboxID string) (*net.UDPConn, *net.TCPListener) {
	s.mu.Lock()
	e := s.sbs[sandboxID]
	s.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	<-e.ready
	return e.udp6, e.tcp6
}

// TestKeptPortTaken6: kept tables whose ports are free on 127.0.0.11 but taken on
// fd62:6572:7468::11 (by a process in the sandbox) are replaced, on new ports that both
// addresses bind, rather than failing or serving IPv4 alone.
func TestKeptPortTaken6(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-taken6")
	st := newFixture(t, nsPath)
	if err := ensureNAT(nsPath, 1111, 2222); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", ns, "addr", "add", serviceAddr6.String()+"/128", "dev", "lo", "nodad")
	taken, err := nsutil.ListenUDP(nsPath, "["+serviceAddr6.String()+"]:1111")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := New(Config{Store: st, Log: testLogger(t)})
	defer s.Close()
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.natOf(clientID); n != natInstalled {
		t.Errorf("nat state %v; want %v (new ports)", n, natInstalled)
	}
	udp, _ := s.listeners(clientID)
	udp6, tcp6 := s.listeners6(clientID)
	if udp6 == nil || tcp6 == nil || udp.LocalAddr().(*net.UDPAddr).Port == 1111 ||
		udp6.LocalAddr().(*net.UDPAddr).Port != udp.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("sockets %v, %v, %v; want both UDP sockets on one new port", udp.LocalAddr(), udp6, tcp6)
	}
	for _, args := range [][]string{{"web"}, {"+tcp", "web"}} {
		if got := dig6(t, ns, args...); got != "172.30.0.3" {
			t.Errorf("dig6 %v: got %q", args, got)
		}
	}
	if v6 := nftTable(t, ns, "ip6"); strings.Contains(v6, ":1111") {
		t.Errorf("ip6 table still leads to the taken port:\n%s", v6)
	}
}

// TestMmsgConn6: the batched reader and writer of an IPv6 socket return IPv6 senders and
// answer them, allocating nothing.
func TestMmsgConn6(t *testing.T) {
	testns.Require(t) // ::1 on lo
	srv, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mc, err := newMmsgConn(srv, 4)
	if err != nil {
		t.Fatal(err)
	}
	var clients [2]*net.UDPConn
	for i := range clients {
		if clients[i], err = net.DialUDP("udp6", nil, srv.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
		defer clients[i].Close()
	}
	bufs := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64), make([]byte, 64)}
	var lens [4]int
	var from [4]netip.AddrPort
	replies := make([][]byte, 2)
	queries := [][]byte{[]byte("q0"), []byte("q1")}
	roundTrip := func() {
		for i, c := range clients {
			c.Write(queries[i])
		}
		for got := 0; got < 2; {
			n, err := mc.read(bufs[got:], lens[got:], from[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		for i := range 2 {
			replies[i] = append(replies[i][:0], bufs[i][:lens[i]]...)
			replies[i][0] = 'a'
		}
		if n, err := mc.write(replies, from[:2]); n != 2 || err != nil {
			t.Fatalf("write: %d, %v; want 2 sent", n, err)
		}
	}
	roundTrip()
	for i, c := range clients {
		b := make([]byte, 64)
		n, err := c.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		if want := []byte{'a', byte('0' + i)}; string(b[:n]) != string(want) {
			t.Errorf("client %d got %q; want %q", i, b[:n], want)
		}
		local := netip.MustParseAddrPort(c.LocalAddr().String())
		if !local.Addr().Is6() || from[0] != local && from[1] != local {
			t.Errorf("senders %v, %v; want %v among them", from[0], from[1], local)
		}
	}
	drain := make([]byte, 64)
	if a := testing.AllocsPerRun(50, func() {
		roundTrip()
		clients[0].Read(drain)
		clients[1].Read(drain)
	}); a > 0 {
		t.Errorf("read+write of a batch: %v allocations; want 0", a)
	}
}
