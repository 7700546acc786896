package dnsd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
	"berth/internal/testns"
)

// ask sends m on c and reads the reply.
func ask(c net.Conn, m *dns.Msg) (*dns.Msg, error) {
	co := &dns.Conn{Conn: c}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// askWeb asks A web. on c and checks the local answer.
func askWeb(t *testing.T, c net.Conn, what string) {
	t.Helper()
	got, err := ask(c, question("web.", dns.TypeA))
	if err != nil {
		t.Fatalf("%s: A web.: %v; want an answer", what, err)
	}
	if len(got.Answer) != 1 || got.Answer[0].(*dns.A).A.String() != "172.30.0.3" {
		t.Fatalf("%s: A web.: got %v; want 172.30.0.3", what, got.Answer)
	}
}

// closedByServer reports whether the server has closed c (a read sees EOF or a reset)
// within wait.
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestTCPHeldConns: 1,000 idle TCP connections held open to a sandbox's 127.0.0.11:53 (some
// after a query) do not keep a new connection's query, or an AXFR (forwarded, as any type
// resolver does not own), from being answered: the longest idle ones are closed to make
// room, and no more than MaxTCPConns stay open.
func TestTCPHeldConns(t *testing.T) {
	testns.Require(t)
	nsPath, _ := sandboxNS(t, "dnsd-tcpheld")
	st := newFixture(t, nsPath)
	u := newUpstream(t, "127.0.0.1")
	// A long idle timeout: every held connection is still within it at the end.
	s := newTestServer(t, st, Config{TCPIdleTimeout: time.Minute}, u)
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	const held = 1000
	var conns []net.Conn
	for len(conns) < held {
		batch := dnstest.DialTCP(t, nsPath, 10)
		askWeb(t, batch[0], fmt.Sprintf("held connection %d, before idling", len(conns)))
		conns = append(conns, batch...)
	}

	fresh := dnstest.DialTCP(t, nsPath, 2)
	askWeb(t, fresh[0], "new connection after 1,000 held")
	r := question("example.", dns.TypeAXFR)
	got, err := ask(fresh[1], r)
	if err != nil {
		t.Fatalf("AXFR example. on a new connection: %v; want the upstream's answer", err)
	}
	if got.Id != r.Id || got.Rcode != dns.RcodeNameError {
		t.Errorf("AXFR example.: got id %d %s; want id %d, the upstream's NXDOMAIN", got.Id, dns.RcodeToString[got.Rcode], r.Id)
	}
	if q := u.seen(); len(q) != 1 || q[0].qtype != dns.TypeAXFR || q[0].proto != "tcp" {
		t.Errorf("upstream saw %v; want the AXFR once over tcp", q)
	}
	askWeb(t, conns[held-1], "the newest held connection")

	open := 0
	for _, c := range conns {
		if !closedByServer(c, 5*time.Millisecond) {
			open++
		}
	}
	if open > DefaultMaxTCPConns {
		t.Errorf("%d of %d held connections still open; want at most MaxTCPConns (%d)", open, held, DefaultMaxTCPConns)
	}
	t.Logf("%d of %d held connections still open", open, held)
	if v := value(t, s, `berth_dns_tcp_closed_total{reason="evicted"}`); v < held-DefaultMaxTCPConns {
		t.Errorf("evicted connections counted: %v; want at least %d", v, held-DefaultMaxTCPConns)
	}
}

// TestTCPIdleTimeout: a connection with no query under way is closed after TCPIdleTimeout,
// whether it never sent one or between queries.
func TestTCPIdleTimeout(t *testing.T) {
	testns.Require(t)
	nsPath, _ := sandboxNS(t, "dnsd-tcpidle")
	st := newFixture(t, nsPath)
	const idle = 500 * time.Millisecond
	s := newTestServer(t, st, Config{TCPIdleTimeout: idle})
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	conns := dnstest.DialTCP(t, nsPath, 2)
	silentSince := time.Now()
	askWeb(t, conns[1], "query before idling")
	askedAt := time.Now()
	idleFor := make([]time.Duration, len(conns))
	var wg sync.WaitGroup
	for i, since := range []time.Time{silentSince, askedAt} {
		wg.Go(func() {
			if closedByServer(conns[i], 3*time.Second) {
				idleFor[i] = time.Since(since)
			}
		})
	}
	wg.Wait()
	for i, d := range idleFor {
		what := []string{"silent", "after a query"}[i]
		// Never assert tight timings: only that the timeout, not something else, closed it.
		switch {
		case d == 0:
			t.Errorf("connection %d (%s): still open after 3 s; want closed after %v idle", i, what, idle)
		case d < idle*8/10 || d > idle+time.Second:
			t.Errorf("connection %d (%s): closed after %v idle; want about %v", i, what, d, idle)
		}
	}
}

// TestTCPBusyYields: with every slot busy (forwards to a slow upstream), a new connection
// waits for the next query to finish, whose connection then gives up its slot: the new
// query is answered, and so are the busy ones.
func TestTCPBusyYields(t *testing.T) {
	testns.Require(t)
	nsPath, _ := sandboxNS(t, "dnsd-tcpbusy")
	st := newFixture(t, nsPath)
	u := newUpstream(t, "127.0.0.1")
	u.setReply(func(r *dns.Msg) *dns.Msg { time.Sleep(300 * time.Millisecond); return daft(r) })
	s := newTestServer(t, st, Config{MaxTCPConns: 2, TCPIdleTimeout: 5 * time.Second}, u)
	if err := s.Serve(sandboxRecord(t, st, clientID)); err != nil {
		t.Fatal(err)
	}
	busy := dnstest.DialTCP(t, nsPath, 2)
	answers := make(chan error, len(busy))
	for _, c := range busy {
		go func() {
			got, err := ask(c, question("test.example.", dns.TypeA))
			if err == nil && len(got.Answer) != 1 {
				err = errors.New("no answer")
			}
			answers <- err
		}()
	}
	for len(u.seen()) < len(busy) {
		time.Sleep(time.Millisecond)
	}
	fresh := dnstest.DialTCP(t, nsPath, 1)
	askWeb(t, fresh[0], "new connection while every slot is busy")
	for range busy {
		if err := <-answers; err != nil {
			t.Errorf("busy connection's forwarded query: %v; want answered", err)
		}
	}
	yielded := 0
	for _, c := range busy {
		if closedByServer(c, 100*time.Millisecond) {
			yielded++
		}
	}
	if yielded != 1 {
		t.Errorf("%d busy connections closed after their answer; want 1, whose slot the new one took", yielded)
	}
	if v := value(t, s, `berth_dns_tcp_closed_total{reason="yielded"}`); v != 1 {
		t.Errorf("yielded connections counted: %v; want 1", v)
	}
}

// TestTCPSlots: the slot bookkeeping on a plain listener (no root): a full listener closes
// the idle connection it finds, holds a new one while all are busy, and closes it after
// the wait if none yields.
func TestTCPSlots(t *testing.T) {
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(func() int { return 0 }, nil)
	l := newSlotListener(tl, newTCPSlots(1, 200*time.Millisecond, m))
	defer l.Close()
	accepted := make(chan *slotConn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c.(*slotConn)
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", tl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	first := <-accepted // busy: not yet waiting for a query
	second := dial()
	if !closedByServer(second, 2*time.Second) {
		t.Fatal("connection while the only slot is busy: not closed after the wait")
	}
	if !first.idle() {
		t.Fatal("first connection: idle refused; want idle (nobody waits)")
	}
	dial()
	third := <-accepted
	if _, err := first.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Errorf("idle connection after a new one took its slot: read got %v; want closed", err)
	}
	if first.busy() {
		t.Error("evicted connection: busy accepted; want false (its slot is gone)")
	}
	first.Close() // frees nothing: its slot is third's
	fourth := dial()
	if !closedByServer(fourth, 2*time.Second) {
		t.Error("connection while the slot is third's (busy): not closed after the wait")
	}
	third.Close()
	dial()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Error("connection after the slot was freed: not accepted")
	}
	for reason, want := range map[int]uint64{tcpEvicted: 1, tcpYielded: 0, tcpNoSlot: 2} {
		if got := m.tcpClosed[reason].Load(); got != want {
			t.Errorf("closed %s: counted %d; want %d", tcpCloseNames[reason], got, want)
		}
	}
}
