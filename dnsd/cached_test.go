package dnsd

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/dnsd/cache"
	"berth/internal/dnstest"
	"berth/internal/promtext"
	"berth/resolver"
	"berth/store"
)

// clock is a settable time for the cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// cachedServer is a test server with a forward cache on a fake clock, forwarding to ups.
func cachedServer(t *testing.T, ups ...*upstream) (*Server, *clock) {
	t.Helper()
	clk := &clock{now: time.Unix(1_000_000, 0)}
	c := cache.New(cache.Config{MaxEntries: 1000, MaxBytes: 1 << 20, Now: clk.Now})
	return newTestServer(t, newFixture(t, ""), Config{Cache: c}, ups...), clk
}

// udpClient serves the client sandbox's UDP socket on 127.0.0.1 (the reader path: fast
// path, cache, relay) and returns a function that asks it one query.
func udpClient(t *testing.T, s *Server) func(r *dns.Msg) *dns.Msg {
	t.Helper()
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := newUDPServer(s.newHandler(context.Background(), clientID, ""), srv)
	t.Cleanup(func() { u.stop(time.Second) })
	return func(r *dns.Msg) *dns.Msg {
		t.Helper()
		c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
		m, _, err := c.Exchange(r, srv.LocalAddr().String())
		if err != nil {
			t.Fatalf("query %v: %v", r.Question, err)
		}
		return m
	}
}

// withTTL answers test.example A with ttl, everything else as daft.
func withTTL(ttl uint32) func(r *dns.Msg) *dns.Msg {
	return func(r *dns.Msg) *dns.Msg {
		m := daft(r)
		for _, rr := range m.Answer {
			rr.Header().Ttl = ttl
		}
		return m
	}
}

func ttlOf(t *testing.T, m *dns.Msg) uint32 {
	t.Helper()
	rrs := append(append([]dns.RR(nil), m.Answer...), m.Ns...)
	if len(rrs) == 0 {
		t.Fatalf("no records in %v", m)
	}
	return rrs[0].Header().Ttl
}

// TestCacheOneUpstreamQueryPerTTL: 1,000 client queries in a TTL window cost one upstream
// query, over the UDP reader, the general path and TCP alike, with the TTL counting down;
// after the TTL the next query goes upstream again.
func TestCacheOneUpstreamQueryPerTTL(t *testing.T) {
	up := newUpstream(t, "127.0.0.1")
	up.setReply(withTTL(30))
	s, clk := cachedServer(t, up)
	ask := udpClient(t, s)

	for i := range 1000 {
		q := question("test.example.", dns.TypeA)
		if i%2 == 1 {
			q.SetEdns0(1232, false) // another key: one more upstream query
		}
		m := ask(q)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Id != q.Id {
			t.Fatalf("query %d: %v", i, m)
		}
		if i == 500 {
			clk.add(10 * time.Second)
		}
		if want := uint32(30); i < 500 && ttlOf(t, m) != want || i > 500 && ttlOf(t, m) != want-10 {
			t.Fatalf("query %d: TTL %d", i, ttlOf(t, m))
		}
	}
	if n := len(up.seen()); n != 2 {
		t.Fatalf("upstream saw %d queries for 1,000 (two keys: with and without EDNS); want 2", n)
	}
	// The general path and TCP read the same entries (a mixed-case name too: 0x20).
	if m := query(t, s, "tcp", question("TeSt.example.", dns.TypeA)); len(m.Answer) != 1 ||
		m.Question[0].Name != "TeSt.example." || m.Answer[0].Header().Ttl != 20 {
		t.Fatalf("tcp: %v", m)
	}
	if n := len(up.seen()); n != 2 {
		t.Fatalf("after tcp: upstream saw %d queries; want 2", n)
	}
	clk.add(21 * time.Second)
	if m := ask(question("test.example.", dns.TypeA)); ttlOf(t, m) != 30 {
		t.Fatalf("after expiry: TTL %d, want a fresh 30", ttlOf(t, m))
	}
	if n := len(up.seen()); n != 3 {
		t.Fatalf("after expiry: upstream saw %d queries; want 3", n)
	}
	var b strings.Builder
	w := promtext.NewWriter(&b)
	s.WriteMetrics(w)
	for _, want := range []string{"berth_dns_cache_hits_total 999", "berth_dns_cache_entries 2",
		`berth_dns_answers_total{source="cached"} 999`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(b.String(), "cache"))
		}
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCacheNegative: an NXDOMAIN is kept for its SOA's minimum (RFC 2308), a failed
// forward for a few seconds.
func TestCacheNegative(t *testing.T) {
	up := newUpstream(t, "127.0.0.1")
	s, clk := cachedServer(t, up)
	ask := udpClient(t, s)
	for range 5 {
		if m := ask(question("nosuch.example.", dns.TypeA)); m.Rcode != dns.RcodeNameError {
			t.Fatalf("nosuch: %v", m)
		}
	}
	clk.add(59 * time.Second)
	if m := ask(question("nosuch.example.", dns.TypeA)); m.Rcode != dns.RcodeNameError || ttlOf(t, m) != 1 {
		t.Fatalf("nosuch after 59 s: %v", m)
	}
	if n := len(up.seen()); n != 1 {
		t.Fatalf("upstream saw %d queries; want 1", n)
	}
	clk.add(time.Second)
	ask(question("nosuch.example.", dns.TypeA))
	if n := len(up.seen()); n != 2 {
		t.Fatalf("after the SOA minimum: upstream saw %d queries; want 2", n)
	}

	up.setReply(rcodeReply(dns.RcodeServerFailure))
	for range 3 {
		q := question("broken.example.", dns.TypeA)
		q.SetEdns0(1232, false) // as Explain asks
		if m := ask(q); m.Rcode != dns.RcodeServerFailure {
			t.Fatalf("broken: %v", m)
		}
	}
	if n := len(up.seen()); n != 3 {
		t.Fatalf("SERVFAIL: upstream saw %d queries; want 3 (one for broken.example)", n)
	}
	m, ex, err := s.Explain(context.Background(), clientID, "broken.example", dns.TypeA)
	if err != nil || m.Rcode != dns.RcodeServerFailure || !ex.Cached {
		t.Fatalf("Explain: %v %+v %v", m, ex, err)
	}
	clk.add(5 * time.Second)
	q := question("broken.example.", dns.TypeA)
	q.SetEdns0(1232, false)
	ask(q)
	if n := len(up.seen()); n != 4 {
		t.Fatalf("SERVFAIL after 5 s: upstream saw %d queries; want 4", n)
	}
}

// TestCachePoisoning: records for other names in a reply are never answers to those names.
func TestCachePoisoning(t *testing.T) {
	up := newUpstream(t, "127.0.0.1")
	victim := &dns.A{Hdr: dns.RR_Header{Name: "victim.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: net.IPv4(6, 6, 6, 6)}
	up.setReply(func(r *dns.Msg) *dns.Msg {
		m := daft(r)
		switch r.Question[0].Name {
		case "test.example.":
			m.Extra = append(m.Extra, victim) // in the additional section
		case "lying.example.":
			m.Rcode = dns.RcodeSuccess
			m.Ns = nil
			m.Answer = []dns.RR{victim} // an answer for another name
		}
		return m
	})
	s, _ := cachedServer(t, up)
	ask := udpClient(t, s)
	ask(question("test.example.", dns.TypeA))
	for range 2 {
		ask(question("lying.example.", dns.TypeA))
	}
	if m := ask(question("victim.example.", dns.TypeA)); m.Rcode != dns.RcodeNameError {
		t.Fatalf("victim.example: %v; want the upstream's NXDOMAIN", m)
	}
	var names []string
	for _, q := range up.seen() {
		names = append(names, q.name)
	}
	if want := "test.example. lying.example. lying.example. victim.example."; strings.Join(names, " ") != want {
		t.Fatalf("upstream saw %q; want %q (a lying reply is not cached)", names, want)
	}
}

// TestCacheFlushedOnUpstreamChange: a sandbox whose upstreams change stops getting the old
// ones' answers, also after it goes back to them; a sandbox with no upstreams (internal
// networks only) never reads the cache.
func TestCacheFlushedOnUpstreamChange(t *testing.T) {
	a, b := newUpstream(t, "127.0.0.1"), newUpstream(t, "127.0.0.1")
	s, _ := cachedServer(t, a)
	st := s.cfg.Store
	var mu sync.Mutex
	cur := a
	s.upstreams = func(_ *store.Snapshot, id string) []resolver.Upstream {
		mu.Lock()
		defer mu.Unlock()
		if id != clientID {
			return nil
		}
		return []resolver.Upstream{{Addr: cur.addr, HostNS: true}}
	}
	switchTo := func(u *upstream) {
		mu.Lock()
		cur = u
		mu.Unlock()
		// A new snapshot: upstreams are worked out again per snapshot.
		if err := st.Update(func(tx *store.Tx) error {
			sb, err := tx.Sandbox(clientID)
			if err != nil {
				return err
			}
			c := *sb
			c.Seq++
			return tx.PutSandbox(&c)
		}); err != nil {
			t.Fatal(err)
		}
	}
	ask := udpClient(t, s)
	ask(question("test.example.", dns.TypeA))
	ask(question("test.example.", dns.TypeA))
	switchTo(b)
	ask(question("test.example.", dns.TypeA))
	switchTo(a)
	ask(question("test.example.", dns.TypeA))
	if na, nb := len(a.seen()), len(b.seen()); na != 2 || nb != 1 {
		t.Fatalf("upstream a saw %d, b %d; want 2 and 1 (a's entry flushed when the sandbox left it)", na, nb)
	}

	h := s.newHandler(context.Background(), webID, "")
	w := dnstest.NewWriter("udp")
	h.ServeDNS(w, question("test.example.", dns.TypeA))
	if w.Msg == nil || w.Msg.Rcode != dns.RcodeServerFailure {
		t.Fatalf("sandbox without upstreams: %v; want SERVFAIL, not the cached answer", w.Msg)
	}
}

// TestCacheExplain: `berth dns query` says an answer came from the cache and how long it
// stays.
func TestCacheExplain(t *testing.T) {
	up := newUpstream(t, "127.0.0.1")
	up.setReply(withTTL(300))
	s, clk := cachedServer(t, up)
	_, ex, err := s.Explain(context.Background(), clientID, "test.example", dns.TypeA)
	if err != nil || ex.Cached || !strings.HasPrefix(ex.How, "upstream ") {
		t.Fatalf("first: %+v %v", ex, err)
	}
	clk.add(100 * time.Second)
	m, ex, err := s.Explain(context.Background(), clientID, "test.example", dns.TypeA)
	if err != nil || !ex.Cached || ex.TTL != 200 || ttlOf(t, m) != 200 ||
		ex.How != "cache: upstream "+up.addr.String()+" (host netns), 200s left" {
		t.Fatalf("second: %v %+v %v", m, ex, err)
	}
}
