package dnsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
	"berth/internal/testns"
	"berth/resolver"
	"berth/store"
)

// These tests need root: they run inside testns' private namespace, where the test process
// itself plays the daemon's ("host") netns and each sandbox gets a netns under /run/netns.

// sandboxNS makes a netns with lo up and returns its path and name.
func sandboxNS(t *testing.T, name string) (string, string) {
	t.Helper()
	path := testns.NewNetNS(t, name)
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return path, name
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// dig runs dig @127.0.0.11 inside netns ns and returns its +short output ("" on no answer).
func dig(t *testing.T, ns string, args ...string) string {
	t.Helper()
	cmd := append([]string{"ip", "netns", "exec", ns, "dig", "@127.0.0.11", "+short", "+time=2", "+tries=1"}, args...)
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return "error: " + strings.TrimSpace(string(out))
	}
	return strings.TrimSpace(string(out))
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func sockFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func sandboxRecord(t *testing.T, st *store.Store, id string) *store.Sandbox {
	t.Helper()
	sb, err := st.Snapshot().Sandbox(id)
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// TestServeInNetNS: real dig in a sandbox netns over UDP and TCP, local and forwarded
// through a host-netns upstream on 127.0.0.53 (as systemd-resolved), sockets in the sandbox
// netns, port 53 left free for the sandbox, Stop closing everything.
func TestServeInNetNS(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-client")
	st := newFixture(t, nsPath)
	// The resolver dials host nameservers on port 53.
	pc, err := net.ListenPacket("udp", "127.0.0.53:53")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.53:53")
	if err != nil {
		t.Fatal(err)
	}
	up := serveUpstream(t, pc, l)
	s := New(Config{Store: st, Log: testLogger(t), Host: func() resolver.HostConfig {
		return resolver.HostConfig{ResolvConfPath: "/etc/resolv.conf", ResolvConf: []byte("nameserver 127.0.0.53\n")}
	}})
	defer s.Close()
	sb := sandboxRecord(t, st, clientID)
	if err := s.Serve(sb); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(sb); err != nil {
		t.Fatalf("second Serve: %v; want nil (idempotent)", err)
	}
	udp, tcp := s.listeners(clientID)
	testns.AssertSocketInNetNS(t, sockFD(t, udp), nsPath)
	testns.AssertSocketInNetNS(t, sockFD(t, tcp), nsPath)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"udp local", []string{"web"}, "172.30.0.3"},
		{"tcp local", []string{"+tcp", "WWW"}, "172.30.0.3"},
		{"udp no edns", []string{"+noedns", "web.n1"}, "172.30.0.3"},
		{"aaaa no data", []string{"AAAA", "web"}, ""},
		{"ptr", []string{"-x", "172.30.0.3"}, "web.n1."},
		{"udp forwarded", []string{"test.example"}, "10.11.12.13"},
		{"tcp forwarded", []string{"+tcp", "test.example"}, "10.11.12.13"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := dig(t, ns, tc.args...); got != tc.want {
				t.Errorf("dig %s: got %q; want %q", strings.Join(tc.args, " "), got, tc.want)
			}
		})
	}
	if q := up.seen(); len(q) != 2 || q[0].proto != "udp" || q[1].proto != "tcp" {
		t.Errorf("upstream saw %v; want test.example once over udp, once over tcp", q)
	}

	t.Run("sandbox binds port 53", func(t *testing.T) {
		own, err := nsutil.ListenUDP(nsPath, "0.0.0.0:53")
		if err != nil {
			t.Fatalf("sandbox process binding 0.0.0.0:53: %v; want free", err)
		}
		defer own.Close()
		ownTCP, err := nsutil.ListenTCP(nsPath, "0.0.0.0:53")
		if err != nil {
			t.Fatalf("sandbox process binding tcp 0.0.0.0:53: %v; want free", err)
		}
		defer ownTCP.Close()
		if got := dig(t, ns, "web"); got != "172.30.0.3" {
			t.Errorf("dig web with port 53 taken in the sandbox: got %q", got)
		}
		if got := dig(t, ns, "+tcp", "web"); got != "172.30.0.3" {
			t.Errorf("dig +tcp web with port 53 taken in the sandbox: got %q", got)
		}
	})

	t.Run("garbage does not stop the server", func(t *testing.T) {
		err := nsutil.Do(nsPath, func() error {
			c, err := net.Dial("udp", "127.0.0.11:53")
			if err != nil {
				return err
			}
			defer c.Close()
			for _, b := range [][]byte{{1}, {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}, []byte(strings.Repeat("\xff", 300))} {
				c.Write(b)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := dig(t, ns, "web"); got != "172.30.0.3" {
			t.Errorf("dig web after garbage: got %q", got)
		}
	})

	t.Run("names change with the store", func(t *testing.T) {
		err := st.Update(func(tx *store.Tx) error {
			ep := tx.SandboxEndpoints(webID)[0].Copy()
			ep.DNSNames = append(ep.DNSNames, "late")
			return tx.PutEndpoint(ep)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := dig(t, ns, "late"); got != "172.30.0.3" {
			t.Errorf("dig late: got %q; want the name added after Serve", got)
		}
	})

	t.Run("stop", func(t *testing.T) {
		udpPort := udp.LocalAddr().(*net.UDPAddr).Port
		tcpPort := tcp.Addr().(*net.TCPAddr).Port
		s.Stop(clientID)
		if got := dig(t, ns, "web"); !strings.HasPrefix(got, "error") {
			t.Errorf("dig after Stop: got %q; want no answer", got)
		}
		if got := run(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); got != "" {
			t.Errorf("nft tables after Stop: %q; want none", got)
		}
		// The ports are free again: the sockets are closed.
		if c, err := nsutil.ListenUDP(nsPath, "127.0.0.11:"+strconv.Itoa(udpPort)); err != nil {
			t.Errorf("rebind udp %d after Stop: %v", udpPort, err)
		} else {
			c.Close()
		}
		if c, err := nsutil.ListenTCP(nsPath, "127.0.0.11:"+strconv.Itoa(tcpPort)); err != nil {
			t.Errorf("rebind tcp %d after Stop: %v", tcpPort, err)
		} else {
			c.Close()
		}
		if err := s.Serve(sb); err != nil {
			t.Fatalf("Serve after Stop: %v", err)
		}
		if got := dig(t, ns, "web"); got != "172.30.0.3" {
			t.Errorf("dig after Serve again: got %q", got)
		}
	})
}

// TestSandboxUpstream: --dns servers are dialled from inside the sandbox, so 127.0.0.1
// there is the sandbox's own loopback.
func TestSandboxUpstream(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-dns")
	st := newFixture(t, nsPath)
	pc, err := nsutil.ListenUDP(nsPath, "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	l, err := nsutil.ListenTCP(nsPath, "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	inside := serveUpstream(t, pc, l)
	err = st.Update(func(tx *store.Tx) error {
		sb := sandboxRecord(t, st, clientID).Copy()
		sb.DNS = []string{"127.0.0.1"}
		return tx.PutSandbox(sb)
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: st, Log: testLogger(t)})
	defer s.Close()
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	if got := dig(t, ns, "test.example"); got != "10.11.12.13" {
		t.Errorf("dig test.example: got %q; want the in-sandbox upstream's answer", got)
	}
	if got := dig(t, ns, "+tcp", "test.example"); got != "10.11.12.13" {
		t.Errorf("dig +tcp test.example: got %q; want the in-sandbox upstream's answer", got)
	}
	if q := inside.seen(); len(q) != 2 {
		t.Errorf("in-sandbox upstream saw %v; want 2 queries", q)
	}
}

// TestReplaceNAT: a table left by an earlier daemon whose ports are taken now is replaced,
// not an error.
func TestReplaceNAT(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-restart")
	st := newFixture(t, nsPath)
	if err := ensureNAT(nsPath, 1111, 2222); err != nil {
		t.Fatal(err)
	}
	taken, err := nsutil.ListenUDP(nsPath, "127.0.0.11:1111") // someone else's now
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := New(Config{Store: st, Log: testLogger(t)})
	defer s.Close()
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	if got := dig(t, ns, "web"); got != "172.30.0.3" {
		t.Errorf("dig web: got %q", got)
	}
	rules := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "ip", natTable)
	if strings.Contains(rules, "1111") || strings.Contains(rules, "2222") || strings.Count(rules, "dnat to") != 2 || strings.Count(rules, "snat to") != 2 {
		t.Errorf("table after replace:\n%s\nwant exactly the 4 rules of the new ports", rules)
	}
	t.Log("\n" + rules)
}

// TestServeNew: ServeNew (a netns made moments ago) opens both sockets in the netns, with
// the nftables connection in the same trip, and installs the table.
func TestServeNew(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-new")
	st := newFixture(t, nsPath)
	s := New(Config{Store: st, Log: testLogger(t)})
	defer s.Close()
	sb := sandboxRecord(t, st, clientID)
	if err := s.ServeNew(sb); err != nil {
		t.Fatal(err)
	}
	udp, tcp := s.listeners(clientID)
	testns.AssertSocketInNetNS(t, sockFD(t, udp), nsPath)
	testns.AssertSocketInNetNS(t, sockFD(t, tcp), nsPath)
	if s.natKept(sb.ID) {
		t.Error("a new netns's server says it kept a table")
	}
	for _, args := range [][]string{{"web"}, {"+tcp", "web"}} {
		if got := dig(t, ns, args...); got != "172.30.0.3" {
			t.Errorf("dig %v: got %q", args, got)
		}
	}
	rules := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "ip", natTable)
	if strings.Count(rules, "dnat to") != 2 || strings.Count(rules, "snat to") != 2 {
		t.Errorf("table:\n%s\nwant the 4 rules", rules)
	}
}

// TestKeepNAT: a table left by an earlier daemon (a crash, or Close) whose ports are free
// is kept as it is and the new sockets take its ports; Close leaves it for the next run,
// Stop removes it.
func TestKeepNAT(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-keep")
	st := newFixture(t, nsPath)
	if err := ensureNAT(nsPath, 1111, 2222); err != nil {
		t.Fatal(err)
	}
	want := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "ip", natTable)
	sb := sandboxRecord(t, st, clientID)
	for round := range 2 {
		s := New(Config{Store: st, Log: testLogger(t)})
		if err := s.Serve(sb); err != nil {
			t.Fatal(err)
		}
		if !s.natKept(sb.ID) {
			t.Errorf("round %d: the table of the earlier run was not kept", round)
		}
		udp, tcp := s.listeners(sb.ID)
		if udp.LocalAddr().(*net.UDPAddr).Port != 1111 || tcp.Addr().(*net.TCPAddr).Port != 2222 {
			t.Errorf("round %d: listening on %v and %v, want the table's ports 1111 and 2222", round, udp.LocalAddr(), tcp.Addr())
		}
		if got := dig(t, ns, "web"); got != "172.30.0.3" {
			t.Errorf("round %d: dig web: got %q", round, got)
		}
		if got := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "ip", natTable); got != want {
			t.Errorf("round %d: table changed:\n%s\nwant\n%s", round, got, want)
		}
		if round == 0 {
			s.Close() // keeps the table
			continue
		}
		s.Stop(sb.ID)
		if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "ip", natTable).CombinedOutput(); err == nil {
			t.Errorf("after Stop the table is still there:\n%s", out)
		}
		s.Close()
	}
}

// TestNSSockets: the sandbox's socket worker makes sockets in the sandbox's netns, from the
// pool and by request, empties the pool when it goes idle, and fails after close.
func TestNSSockets(t *testing.T) {
	testns.Require(t)
	nsPath, _ := sandboxNS(t, "dnsd-sockets")
	h, err := nsutil.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ns := newNSSockets(h, 20*time.Millisecond)
	for _, up := range []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("[::1]:53")} {
		for i := range nsPool + 2 { // from the pool, then by request
			fd, err := ns.open(up)
			if err != nil {
				t.Fatal(err)
			}
			testns.AssertSocketInNetNS(t, fd, nsPath)
			unix.Close(fd)
			if i == 0 {
				// Idle: the worker and its thread go, and the pool is closed.
				deadline := time.Now().Add(5 * time.Second)
				for len(ns.pool) != 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if len(ns.pool) != 0 {
					t.Errorf("pool holds %d sockets after the worker went idle; want 0", len(ns.pool))
				}
			}
		}
	}
	ns.close()
	if _, err := ns.open(netip.MustParseAddrPort("[::1]:53")); !errors.Is(err, nsutil.ErrWorkerClosed) {
		t.Errorf("open after close: got %v; want nsutil.ErrWorkerClosed", err)
	}
}

// natKept reports whether sandboxID is served on the NAT table of an earlier run (tests).
func (s *Server) natKept(sandboxID string) bool {
	n, ok := s.natOf(sandboxID)
	return ok && n.kept()
}

// natOf returns the NAT state of sandboxID's server, once it has started, if it serves.
func (s *Server) natOf(sandboxID string) (natState, bool) {
	s.mu.Lock()
	e := s.sbs[sandboxID]
	s.mu.Unlock()
	if e == nil {
		return 0, false
	}
	<-e.ready
	s.mu.Lock()
	serving := e.phase == phaseServing
	s.mu.Unlock()
	e.natMu.Lock()
	defer e.natMu.Unlock()
	return e.nat, serving
}

// TestUDPBurst: many clients send many queries at once, so the reader takes them several
// per recvmmsg and answers several per sendmmsg. Every reply must reach the socket that
// asked, carry its ID and question, and answer it; malformed datagrams in the burst are
// dropped or answered alone and do not disturb the others.
func TestUDPBurst(t *testing.T) {
	testns.Require(t)
	nsPath, _ := sandboxNS(t, "dnsd-burst")
	st := newFixture(t, nsPath)
	s := newTestServer(t, st, Config{}) // no debug log: that takes the general path
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	// 128 queries in flight: within the server socket's default receive buffer (208 KiB
	// holds ~200 small datagrams; a longer burst is dropped by the kernel, as for any UDP
	// server, and the client retries).
	const clients, perClient = 8, 16
	names := []struct{ name, want string }{{"web.", "172.30.0.3"}, {"WWW.", "172.30.0.3"}, {"client.", "172.30.0.2"}, {"web.n1.", "172.30.0.3"}}
	conns := make([]*net.UDPConn, clients)
	for c := range conns {
		conn, err := nsutil.ListenUDP(nsPath, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetReadBuffer(1 << 20)
		conns[c] = conn
	}
	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}
	// All queries first, replies afterwards: the server's socket queue fills up.
	for i := range perClient {
		for c, conn := range conns {
			m := question(names[(i+c)%len(names)].name, dns.TypeA)
			m.Id = uint16(c<<8 | i)
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.WriteToUDP(b, server); err != nil {
				t.Fatal(err)
			}
			if i%8 == 0 {
				conn.WriteToUDP([]byte{1, 2, 3}, server) // too short: no reply
			}
		}
	}
	for c, conn := range conns {
		got := map[uint16]bool{}
		buf := make([]byte, 1024)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(got) < perClient {
			n, err := conn.Read(buf)
			if err != nil {
				var missing []int
				for i := range perClient {
					if !got[uint16(c<<8|i)] {
						missing = append(missing, i)
					}
				}
				t.Fatalf("client %d: %d of %d replies (missing %v), then %v", c, len(got), perClient, missing, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("client %d: reply does not unpack: %v", c, err)
			}
			i := int(r.Id & 0xFF)
			if int(r.Id>>8) != c || i >= perClient || got[r.Id] {
				t.Fatalf("client %d got reply ID %#x: not one of its queries, or twice", c, r.Id)
			}
			got[r.Id] = true
			want := names[(i+c)%len(names)]
			if len(r.Question) != 1 || r.Question[0].Name != want.name {
				t.Fatalf("client %d reply %d: question %v; want %s", c, i, r.Question, want.name)
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want.want {
				t.Fatalf("client %d reply %d (%s): answer %v; want %s", c, i, want.name, r.Answer, want.want)
			}
		}
	}
}

// TestStopNameReused: a sandbox is removed (its netns pin deleted) and a new one takes its
// name, so its netns is pinned at the same path, before the old server is stopped. Stopping
// the old server must leave the new sandbox's NAT table alone.
func TestStopNameReused(t *testing.T) {
	testns.Require(t)
	const ns = "dnsd-reuse"
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	nsPath := "/run/netns/" + ns
	st := newFixture(t, nsPath) // client and web both name nsPath
	s := newTestServer(t, st, Config{Log: testLogger(t)})
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	// The old sandbox goes (its server still runs, holding the old netns), a new one
	// comes with the same name.
	run(t, "ip", "netns", "del", ns)
	run(t, "ip", "netns", "add", ns)
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	if err := s.Serve(sandboxRecord(t, st, webID)); err != nil {
		t.Fatal(err)
	}
	s.Stop(clientID)
	if got := run(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); got != "table ip "+natTable+"\ntable ip6 "+natTable {
		t.Errorf("tables in the new netns after stopping the old server: %q; want the new server's", got)
	}
	if got := dig(t, ns, "web"); got != "172.30.0.3" {
		t.Errorf("dig web in the new netns after stopping the old server: %q", got)
	}
	s.Stop(webID)
	if got := run(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); got != "" {
		t.Errorf("tables after stopping the new server: %q; want none", got)
	}
}

// TestCleanFile: a clean stop lists the sandboxes whose kept tables need no conntrack
// reset, with their ports, so the next start binds those ports without reading the table
// and skips the reset; the table is read afterwards, and put back if it was changed while
// no daemon ran. A crash (no list) reads and resets every kept table before serving.
func TestCleanFile(t *testing.T) {
	testns.Require(t)
	nsPath, ns := sandboxNS(t, "dnsd-clean")
	st := newFixture(t, nsPath)
	sb := sandboxRecord(t, st, clientID)
	clean := filepath.Join(t.TempDir(), "dns-clean")
	serve := func() *Server {
		t.Helper()
		s := New(Config{Store: st, Log: testLogger(t), CleanFile: clean})
		if err := s.Serve(sb); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// settled waits for the background work Serve queued, and returns the NAT state it
	// left.
	settled := func(s *Server) (queued int, nat natState) {
		t.Helper()
		for range 200 {
			s.mu.Lock()
			busy := s.settling
			queued = s.queued
			s.mu.Unlock()
			if !busy {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		nat, _ = s.natOf(sb.ID)
		return queued, nat
	}
	listed := func() string {
		t.Helper()
		b, err := os.ReadFile(clean)
		if err != nil {
			t.Fatalf("clean list after Close: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	digWeb := func(when string) {
		t.Helper()
		if got := dig(t, ns, "web"); got != "172.30.0.3" {
			t.Errorf("%s: dig web: got %q", when, got)
		}
	}

	s := serve() // installs the table and resets at once: clean
	digWeb("first start")
	udp, tcp := s.listeners(sb.ID)
	wantLine := fmt.Sprintf("%s %d %d", clientID, udp.LocalAddr().(*net.UDPAddr).Port, tcp.Addr().(*net.TCPAddr).Port)
	s.Close()
	if got := listed(); got != wantLine {
		t.Fatalf("clean list after Close: %q; want %q", got, wantLine)
	}

	s = serve() // listed clean: the listed ports, the table checked afterwards, no reset
	digWeb("start after a clean stop")
	if q, nat := settled(s); nat != natChecked || q != 1 {
		t.Errorf("start after a clean stop: nat state %v, queued %d; want %v (kept on the list's word, then checked), 1", nat, q, natChecked)
	}
	if _, err := os.Stat(clean); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("clean list not removed at start: %v", err)
	}
	// Served again in the same run (as a rename does): Stop removed the table, so the list
	// of the last run no longer holds; the table is installed at once, not checked later.
	s.mu.Lock()
	old := s.sbs[sb.ID]
	s.mu.Unlock()
	s.Stop(sb.ID)
	if err := s.Serve(sb); err != nil {
		t.Fatal(err)
	}
	if _, nat := settled(s); nat != natInstalled {
		t.Errorf("served again after Stop: nat state %v; want %v (a new table)", nat, natInstalled)
	}
	// A check of the stopped server that was under way meanwhile leaves the new table be:
	// it leads to the new server's ports, not back to the old one's.
	old.natMu.Lock()
	old.nat = natListed
	old.natMu.Unlock()
	s.settle(old)
	digWeb("served again after Stop")
	udp, tcp = s.listeners(sb.ID)
	s.Close()
	table := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "ip", natTable)
	for _, port := range []int{udp.LocalAddr().(*net.UDPAddr).Port, tcp.Addr().(*net.TCPAddr).Port} {
		if !strings.Contains(table, fmt.Sprintf("127.0.0.11:%d", port)) {
			t.Errorf("table after the old server's check does not lead to the new server's port %d:\n%s", port, table)
		}
	}

	// The table is removed by hand while no daemon runs: the start still serves on the
	// listed ports, and the check puts the table back.
	run(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "ip", natTable)
	s = serve()
	if q, nat := settled(s); q != 1 || nat != natChecked {
		t.Errorf("start after the table was deleted: queued %d, nat state %v; want 1, %v (put back)", q, nat, natChecked)
	}
	digWeb("after the check put the table back")
	if got := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "ip", natTable); got != table {
		t.Errorf("table after the check:\n%s\nwant\n%s", got, table)
	}

	// A crash: this run writes no list (its sockets close as a dead process's do), so the
	// next start reads the kept table and resets it.
	s.cfg.CleanFile = ""
	s.Close()
	s = serve()
	defer s.Close()
	digWeb("start after a crash")
	if q, nat := settled(s); nat != natReset || q != 1 {
		t.Errorf("start after a crash: nat state %v, queued %d; want %v (kept after reading it, then reset), 1", nat, q, natReset)
	}
}

// listeners returns the sockets of a served sandbox, for tests that check their netns.
func (s *Server) listeners(sandboxID string) (*net.UDPConn, *net.TCPListener) {
	s.mu.Lock()
	e := s.sbs[sandboxID]
	s.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	<-e.ready
	return e.udp, e.tcp
}

// ensureNAT installs the tables leading 127.0.0.11:53 and [fd62:6572:7468::11]:53 to
// udpPort and tcpPort in the netns at nsPath, as an earlier daemon run would have left them.
func ensureNAT(nsPath string, udpPort, tcpPort uint16) error {
	return ensureNATFamilies(nsPath, udpPort, tcpPort, true)
}

// ensureNATFamilies is ensureNAT, with the IPv4 table alone unless v6 (as a daemon from
// before the IPv6 listener left it).
func ensureNATFamilies(nsPath string, udpPort, tcpPort uint16, v6 bool) error {
	h, err := nsutil.Open(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		return err
	}
	return installNAT(c, udpPort, tcpPort, v6)
}
