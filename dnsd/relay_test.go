package dnsd

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestAppendFailure: the relay's SERVFAIL from the query bytes is the one failure() packs.
func TestAppendFailure(t *testing.T) {
	set := func(m *dns.Msg, f func(m *dns.Msg)) *dns.Msg { f(m); return m }
	var sc scratch
	for _, tc := range []struct {
		name string
		r    *dns.Msg
	}{
		{"plain", question("a.example.", dns.TypeA)},
		{"edns", set(question("a.example.", dns.TypeMX), func(m *dns.Msg) { m.SetEdns0(4096, false) })},
		{"edns do, cd, rd clear", set(question("A.Example.", dns.TypeTXT), func(m *dns.Msg) {
			m.SetEdns0(1400, true)
			m.CheckingDisabled, m.RecursionDesired = true, false
		})},
		{"edns option", set(question("a.example.", dns.TypeA), func(m *dns.Msg) {
			m.SetEdns0(1400, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt, _ := tc.r.Pack()
			q, ok := parseQuery(pkt, &sc)
			if !ok {
				t.Fatal("parseQuery refused the query")
			}
			want, _ := failure(tc.r, dns.RcodeServerFailure).Pack()
			if got := appendFailure(nil, pkt, q, dns.RcodeServerFailure); string(got) != string(want) {
				t.Errorf("got  %x\nwant %x", got, want)
			}
		})
	}
}

// TestReplyMatches: only a response with the query's ID and question (name in any case)
// is taken; an error reply may omit the question.
func TestReplyMatches(t *testing.T) {
	r := question("Web.Example.", dns.TypeA)
	r.Id = 7
	query, _ := r.Pack()
	qend, _ := questionEnd(query)
	reply := func(f func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetReply(r)
		f(m)
		b, _ := m.Pack()
		return b
	}
	for _, tc := range []struct {
		name  string
		reply []byte
		want  bool
	}{
		{"same", reply(func(*dns.Msg) {}), true},
		{"name in other case", reply(func(m *dns.Msg) { m.Question[0].Name = "wEB.eXAMPLE." }), true},
		{"other id", reply(func(m *dns.Msg) { m.Id = 8 }), false},
		{"not a response", reply(func(m *dns.Msg) { m.Response = false }), false},
		{"other name", reply(func(m *dns.Msg) { m.Question[0].Name = "web.example.org." }), false},
		{"other label split", reply(func(m *dns.Msg) { m.Question[0].Name = "webe.xample." }), false},
		{"other type", reply(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }), false},
		{"other class", reply(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false},
		{"two questions", reply(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false},
		{"formerr without question", reply(func(m *dns.Msg) { m.Question = nil; m.Rcode = dns.RcodeFormatError }), true},
		{"noerror without question", reply(func(m *dns.Msg) { m.Question = nil }), false},
		{"cut in the question", reply(func(*dns.Msg) {})[:qend-1], false},
		{"header only", reply(func(*dns.Msg) {})[:minQuery], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replyMatches(tc.reply, 7, query[:qend]); got != tc.want {
				t.Errorf("got %v; want %v", got, tc.want)
			}
		})
	}
}

// TestRelayInflight: the UDP reader never waits for a slot: with the sandbox's one slot
// held by a forward in the relay, the next query takes the general path, waits QueueWait
// and is REFUSED; the first still gets its answer and gives the slot back.
func TestRelayInflight(t *testing.T) {
	u := newUpstream(t, "127.0.0.1")
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	u.setReply(func(r *dns.Msg) *dns.Msg { <-release; return daft(r) })
	s := newTestServer(t, newFixture(t, ""), Config{MaxInflight: 1, QueueWait: 20 * time.Millisecond}, u)
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h := s.newHandler(context.Background(), clientID, "")
	us := newUDPServer(h, srv)
	defer us.stop(time.Second)
	cl, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	send := func(id uint16, name string) {
		r := question(name, dns.TypeA)
		r.Id = id
		b, _ := r.Pack()
		cl.Write(b)
	}
	read := func() *dns.Msg {
		buf := make([]byte, 4096)
		_ = cl.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := cl.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		return m
	}
	send(1, "test.example.")
	for len(u.seen()) == 0 {
		time.Sleep(time.Millisecond)
	}
	send(2, "test.example.")
	if got := read(); got.Id != 2 || got.Rcode != dns.RcodeRefused {
		t.Errorf("second query: got id %d %s; want id 2 REFUSED", got.Id, dns.RcodeToString[got.Rcode])
	}
	once.Do(func() { close(release) })
	if got := read(); got.Id != 1 || len(got.Answer) != 1 {
		t.Errorf("first query: got %v; want id 1 answered", got)
	}
	for len(h.sem) != 0 || len(s.global) != 0 {
		time.Sleep(time.Millisecond) // released right after the reply is written
	}
	// The refused answer is counted after it is written, so the client may read it first.
	deadline := time.Now().Add(2 * time.Second)
	for value(t, s, `berth_dns_answers_total{source="refused"}`) != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if v := value(t, s, `berth_dns_answers_total{source="refused"}`); v != 1 {
		t.Errorf("refused answers: got %v; want 1", v)
	}
}

// TestRelayClose: closing the server ends a forward waiting on a silent upstream at once.
func TestRelayClose(t *testing.T) {
	dead := newUpstream(t, "127.0.0.1")
	dead.setReply(nil)
	s := New(Config{Store: newFixture(t, ""), ForwardTimeout: time.Minute, ForwardDeadline: time.Minute})
	s.upstreams = newTestServer(t, newFixture(t, ""), Config{}, dead).upstreams
	done := make(chan *dns.Msg)
	go func() {
		m, _, _ := s.Explain(context.Background(), clientID, "slow.example", dns.TypeA)
		done <- m
	}()
	for len(dead.seen()) == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	s.Close()
	select {
	case m := <-done:
		if m.Rcode != dns.RcodeServerFailure {
			t.Errorf("got %s; want SERVFAIL", dns.RcodeToString[m.Rcode])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("forward still waiting 5 s after Close")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// TestRelayEpollFails: when the relay's epoll instance breaks under its loop (closed, or
// an fd that is no epoll instance), the loop neither panics nor spins: the forward it holds
// gets SERVFAIL at once, and the next forward starts a new loop and is answered.
func TestRelayEpollFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, ep *epoller)
	}{
		{"epoll file closed", func(t *testing.T, ep *epoller) { ep.file.Close() }},
		{"epoll_wait fails", func(t *testing.T, ep *epoller) {
			// The loop wakes for the next attempt's timer, and epoll_wait on /dev/null
			// fails with EINVAL.
			f, err := os.Open("/dev/null")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := unix.Dup2(int(f.Fd()), ep.fd); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dead := newUpstream(t, "127.0.0.1")
			dead.setReply(nil)
			live := newUpstream(t, "127.0.0.1")
			s := newTestServer(t, newFixture(t, ""), Config{Log: testLogger(t), ForwardTimeout: 200 * time.Millisecond, ForwardDeadline: time.Minute})
			ups := []*upstream{dead}
			if tc.name == "epoll_wait fails" {
				ups = []*upstream{dead, dead, dead}
			}
			s.upstreams = newTestServer(t, newFixture(t, ""), Config{}, ups...).upstreams
			type result struct {
				m   *dns.Msg
				how string
			}
			done := make(chan result, 1)
			go func() {
				m, ex, _ := s.Explain(context.Background(), clientID, "slow.example", dns.TypeA)
				how := ex.How
				done <- result{m, how}
			}()
			var ep *epoller
			for ep == nil { // sent, and its socket in epoll: its timer is set
				time.Sleep(time.Millisecond)
				s.relay.mu.Lock()
				if len(s.relay.timers) > 0 {
					ep = s.relay.ep
				}
				s.relay.mu.Unlock()
			}
			start := time.Now()
			tc.break_(t, ep)
			select {
			case r := <-done:
				if r.m.Rcode != dns.RcodeServerFailure {
					t.Errorf("held forward: got %s (%s); want SERVFAIL", dns.RcodeToString[r.m.Rcode], r.how)
				}
				t.Logf("held forward: %s after %v", r.how, time.Since(start))
			case <-time.After(5 * time.Second):
				t.Fatal("held forward still waiting 5 s after the epoll instance broke")
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				s.relay.mu.Lock()
				state := s.relay.state
				s.relay.mu.Unlock()
				if state == relayIdle {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("relay state %d 5 s after the epoll instance broke; want idle", state)
				}
				time.Sleep(time.Millisecond)
			}
			s.upstreams = newTestServer(t, newFixture(t, ""), Config{}, live).upstreams
			m, ex, err := s.Explain(context.Background(), clientID, "test.example", dns.TypeA)
			how := ex.How
			if err != nil || len(m.Answer) != 1 {
				t.Fatalf("next forward: got %v, %q, %v; want the upstream's answer", m, how, err)
			}
		})
	}
}

// TestRelayIdleParked: once the last attempt has timed out, the relay's loop waits for the
// next event instead of spinning on the deadline that passed.
func TestRelayIdleParked(t *testing.T) {
	dead := newUpstream(t, "127.0.0.1")
	dead.setReply(nil)
	s := newTestServer(t, newFixture(t, ""), Config{ForwardTimeout: 50 * time.Millisecond, ForwardDeadline: time.Second}, dead)
	m, ex, err := s.Explain(context.Background(), clientID, "slow.example", dns.TypeA)
	how := ex.How
	if err != nil || m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("got %v, %q, %v; want SERVFAIL", m, how, err)
	}
	s.relay.mu.Lock()
	ep := s.relay.ep
	s.relay.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // the loop is back from the timeout
	before := ep.waits.Load()
	time.Sleep(200 * time.Millisecond)
	if n := ep.waits.Load() - before; n > 1 {
		t.Errorf("relay loop waited %d times in 200 ms with nothing to do; want it parked", n)
	}
}
