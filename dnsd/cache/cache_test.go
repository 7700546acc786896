package cache

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// clock is a settable Now for tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1_700_000_000, 0)} }
func testCache(t testing.TB, cl *clock) *Cache {
	t.Helper()
	return New(Config{MaxEntries: 1000, MaxBytes: 1 << 20, Now: cl.now})
}

// query packs a query for name/qtype with ID 0x1234, RD set, and EDNS as asked.
func query(t testing.TB, name string, qtype uint16, edns, do bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x1234
	if edns {
		m.SetEdns0(1232, do)
	}
	return m
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("rr %q: %v", s, err)
	}
	return r
}

// reply builds the upstream's reply to q with the given records.
func reply(t testing.TB, q *dns.Msg, rcode int, answer, ns, extra []string) *dns.Msg {
	t.Helper()
	r := new(dns.Msg)
	r.SetRcode(q, rcode)
	r.RecursionAvailable = true
	for _, s := range answer {
		r.Answer = append(r.Answer, rr(t, s))
	}
	for _, s := range ns {
		r.Ns = append(r.Ns, rr(t, s))
	}
	for _, s := range extra {
		r.Extra = append(r.Extra, rr(t, s))
	}
	if o := q.IsEdns0(); o != nil {
		r.SetEdns0(1232, o.Do())
	}
	return r
}

// mustPut stores r as the answer to q and fails the test if it was refused.
func mustPut(t testing.TB, c *Cache, part uint32, q, r *dns.Msg) {
	t.Helper()
	if ok, why := c.put(part, pack(t, q), pack(t, r), "10.0.0.1:53"); !ok {
		t.Fatalf("put %s refused: %s", q.Question[0].Name, why)
	}
}

// get asks the cache for q and unpacks what it returns.
func get(t testing.TB, c *Cache, part uint32, q *dns.Msg, limit int) (*dns.Msg, uint32, bool) {
	t.Helper()
	b, ttl, up, ok := c.Get(part, pack(t, q), limit, nil)
	if !ok {
		return nil, 0, false
	}
	if up != "10.0.0.1:53" {
		t.Errorf("upstream %q, want 10.0.0.1:53", up)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpack of Get's reply: %v", err)
	}
	return m, ttl, true
}

var soa = "example. 3600 IN SOA ns.example. admin.example. 1 7200 900 1209600 60"

func TestPositiveTTLCountsDown(t *testing.T) {
	cl := newClock()
	c := testCache(t, cl)
	p := c.Partition("10.0.0.1:53 host")
	q := query(t, "www.example.", dns.TypeA, true, false)
	r := reply(t, q, dns.RcodeSuccess,
		[]string{"www.example. 300 IN A 192.0.2.1", "www.example. 600 IN A 192.0.2.2"},
		[]string{"example. 900 IN NS ns.example."}, nil)
	mustPut(t, c, p, q, r)

	cl.add(10*time.Second + 900*time.Millisecond)
	q2 := query(t, "WwW.ExAmple.", dns.TypeA, true, false)
	q2.Id = 0xBEEF
	q2.RecursionDesired = false
	m, ttl, ok := get(t, c, p, q2, 512)
	if !ok {
		t.Fatal("miss, want hit")
	}
	if m.Id != 0xBEEF || m.RecursionDesired || m.Question[0].Name != "WwW.ExAmple." {
		t.Errorf("id %#x rd %v question %q: want the query's", m.Id, m.RecursionDesired, m.Question[0].Name)
	}
	if ttl != 290 {
		t.Errorf("remaining lifetime %d, want 290", ttl)
	}
	want := []uint32{290, 590}
	for i, a := range m.Answer {
		if a.Header().Ttl != want[i] {
			t.Errorf("answer %d TTL %d, want %d", i, a.Header().Ttl, want[i])
		}
	}
	if m.Ns[0].Header().Ttl != 890 {
		t.Errorf("NS TTL %d, want 890", m.Ns[0].Header().Ttl)
	}
	if o := m.IsEdns0(); o == nil || o.UDPSize() != 1232 {
		t.Errorf("OPT %v, want it untouched", o)
	}

	cl.add(289 * time.Second) // 299.9 s after Put: still there
	if _, ttl, ok := get(t, c, p, q, 512); !ok || ttl != 1 {
		t.Errorf("at 299.9s: ok %v ttl %d, want hit with 1", ok, ttl)
	}
	cl.add(100 * time.Millisecond)
	if _, _, ok := get(t, c, p, q, 512); ok {
		t.Error("hit at 300s, want the entry expired")
	}
	if s := c.Stats(); s.Hits != 2 || s.Misses != 1 || s.Entries != 0 || s.Evictions != 0 || s.Bytes != 0 {
		t.Errorf("stats %+v, want 2 hits, 1 miss, nothing left, no evictions", s)
	}
}

func TestMaxTTLCaps(t *testing.T) {
	cl := newClock()
	c := New(Config{MaxEntries: 10, MaxTTL: time.Minute, Now: cl.now})
	q := query(t, "a.example.", dns.TypeA, false, false)
	mustPut(t, c, 1, q, reply(t, q, 0, []string{"a.example. 86400 IN A 192.0.2.1"}, nil, nil))
	cl.add(5 * time.Second)
	m, ttl, ok := get(t, c, 1, q, 512)
	if !ok || ttl != 55 || m.Answer[0].Header().Ttl != 55 {
		t.Fatalf("ok %v ttl %d, want 55 (cap 60 - age 5)", ok, ttl)
	}
	cl.add(55 * time.Second)
	if _, _, ok := get(t, c, 1, q, 512); ok {
		t.Error("hit after MaxTTL")
	}
}

func TestTTLZeroNotCached(t *testing.T) {
	c := testCache(t, newClock())
	q := query(t, "a.example.", dns.TypeA, false, false)
	r := reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, []string{"ns.example. 0 IN A 192.0.2.53"})
	if c.Put(1, pack(t, q), pack(t, r), "u") {
		t.Error("cached a reply with a TTL of 0 in the additional section")
	}
	r = reply(t, q, 0, []string{"a.example. 2147483648 IN A 192.0.2.1"}, nil, nil)
	if c.Put(1, pack(t, q), pack(t, r), "u") {
		t.Error("cached a TTL with the top bit set (RFC 2181: 0)")
	}
}

func TestNegative(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rcode  int
		soa    string
		maxNeg time.Duration
		life   uint32 // 0: not cached
	}{
		{"nxdomain soa minimum", dns.RcodeNameError, soa, 0, 60},
		{"nodata soa minimum", dns.RcodeSuccess, soa, 0, 60},
		{"soa ttl below minimum", dns.RcodeNameError, "example. 30 IN SOA ns.example. a.example. 1 2 3 4 600", 0, 30},
		{"capped", dns.RcodeNameError, "example. 86400 IN SOA ns.example. a.example. 1 2 3 4 86400", 10 * time.Minute, 600},
		{"default cap 30m", dns.RcodeNameError, "example. 86400 IN SOA ns.example. a.example. 1 2 3 4 86400", 0, 1800},
		{"no soa", dns.RcodeNameError, "", 0, 0},
		{"soa minimum 0", dns.RcodeSuccess, "example. 300 IN SOA ns.example. a.example. 1 2 3 4 0", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newClock()
			c := New(Config{MaxEntries: 10, MaxNegTTL: tc.maxNeg, Now: cl.now})
			q := query(t, "nope.example.", dns.TypeAAAA, true, false)
			var ns []string
			if tc.soa != "" {
				ns = []string{tc.soa}
			}
			ok, why := c.put(1, pack(t, q), pack(t, reply(t, q, tc.rcode, nil, ns, nil)), "10.0.0.1:53")
			if ok != (tc.life > 0) {
				t.Fatalf("put: %v (%s), want %v", ok, why, tc.life > 0)
			}
			if !ok {
				return
			}
			cl.add(7 * time.Second)
			m, ttl, ok := get(t, c, 1, q, 1232)
			if !ok || ttl != tc.life-7 || m.Rcode != tc.rcode {
				t.Fatalf("ok %v ttl %d rcode %d, want %d and %d", ok, ttl, m.Rcode, tc.life-7, tc.rcode)
			}
			if got := m.Ns[0].Header().Ttl; got != tc.life-7 {
				t.Errorf("SOA TTL %d, want %d (counting down from the lifetime)", got, tc.life-7)
			}
			cl.add(time.Duration(tc.life-7) * time.Second)
			if _, _, ok := get(t, c, 1, q, 1232); ok {
				t.Error("hit after the negative lifetime")
			}
		})
	}
}

func TestServfailAndOtherRcodes(t *testing.T) {
	cl := newClock()
	c := New(Config{MaxEntries: 10, Now: cl.now})
	q := query(t, "down.example.", dns.TypeA, false, false)
	mustPut(t, c, 1, q, reply(t, q, dns.RcodeServerFailure, nil, nil, nil))
	cl.add(1999 * time.Millisecond)
	if m, ttl, ok := get(t, c, 1, q, 512); !ok || m.Rcode != dns.RcodeServerFailure || ttl != 1 {
		t.Fatalf("servfail at 1.999s: ok %v ttl %d", ok, ttl)
	}
	cl.add(time.Millisecond)
	if _, _, ok := get(t, c, 1, q, 512); ok {
		t.Error("servfail still cached after 2s")
	}
	for _, rc := range []int{dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented, dns.RcodeYXDomain} {
		r := reply(t, q, rc, nil, []string{soa}, nil)
		if c.Put(1, pack(t, q), pack(t, r), "u") {
			t.Errorf("cached rcode %s", dns.RcodeToString[rc])
		}
	}
	off := New(Config{MaxEntries: 10, ServfailTTL: -1})
	if off.Put(1, pack(t, q), pack(t, reply(t, q, dns.RcodeServerFailure, nil, nil, nil)), "u") {
		t.Error("cached SERVFAIL with ServfailTTL < 0")
	}
}

func TestNeverCached(t *testing.T) {
	q := query(t, "a.example.", dns.TypeA, true, false)
	good := func() *dns.Msg { return reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil) }
	qb := pack(t, q)
	for _, tc := range []struct {
		name  string
		query func() []byte
		reply func() []byte
	}{
		{"tc", nil, func() []byte { r := good(); r.Truncated = true; return pack(t, r) }},
		{"id", nil, func() []byte { r := good(); r.Id++; return pack(t, r) }},
		{"qr clear", nil, func() []byte { r := good(); r.Response = false; return pack(t, r) }},
		{"opcode", nil, func() []byte { r := good(); r.Opcode = dns.OpcodeNotify; return pack(t, r) }},
		{"other name", nil, func() []byte { r := good(); r.Question[0].Name = "b.example."; return pack(t, r) }},
		{"other type", nil, func() []byte { r := good(); r.Question[0].Qtype = dns.TypeAAAA; return pack(t, r) }},
		{"no question", nil, func() []byte { r := good(); r.Question = nil; return pack(t, r) }},
		{"two questions", nil, func() []byte {
			r := good()
			r.Question = append(r.Question, r.Question[0])
			return pack(t, r)
		}},
		{"two opts", nil, func() []byte {
			r := good()
			r.Extra = append(r.Extra, r.Extra[0])
			return pack(t, r)
		}},
		{"trailing byte", nil, func() []byte { return append(pack(t, good()), 0) }},
		{"cut short", nil, func() []byte { b := pack(t, good()); return b[:len(b)-1] }},
		{"count too high", nil, func() []byte { b := pack(t, good()); b[7]++; return b }},
		{"count too low", nil, func() []byte { b := pack(t, good()); b[11]--; return b }},
		{"rdlength too long", nil, func() []byte {
			r := good()
			r.Extra = nil
			b := pack(t, r)
			b[len(b)-5]++ // A rdlength 4 -> 5
			return b
		}},
		{"forward pointer", nil, func() []byte {
			b := pack(t, good())
			qe := len(qb) - 11 // the answer's owner, after the question
			b[qe], b[qe+1] = 0xC0, byte(qe+2)
			return b
		}},
		{"query with two questions", func() []byte {
			q2 := query(t, "a.example.", dns.TypeA, true, false)
			q2.Question = append(q2.Question, q2.Question[0])
			return pack(t, q2)
		}, nil},
		{"query is a response", func() []byte { q2 := q.Copy(); q2.Response = true; return pack(t, q2) }, nil},
		{"query with two opts", func() []byte { q2 := q.Copy(); q2.Extra = append(q2.Extra, q2.Extra[0]); return pack(t, q2) }, nil},
		{"ecs option", nil, func() []byte {
			r := good()
			o := r.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0)})
			return pack(t, r)
		}},
		{"two cookie options", nil, func() []byte {
			r := good()
			o := r.IsEdns0()
			ck := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
			o.Option = append(o.Option, ck, ck)
			return pack(t, r)
		}},
		{"cookie in an opt that is not last", nil, func() []byte {
			r := good()
			o := r.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
			r.Extra = append([]dns.RR{o}, rr(t, "ns.example. 300 IN A 192.0.2.53"))
			return pack(t, r)
		}},
		{"tsig", nil, func() []byte {
			r := good()
			r.Extra = append(r.Extra, &dns.TSIG{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
				Algorithm: dns.HmacSHA256, TimeSigned: 1_700_000_000, Fudge: 300, MAC: "00", OrigId: 0x1234})
			return pack(t, r)
		}},
		{"meta type", nil, func() []byte {
			r := good()
			r.Answer = append(r.Answer, &dns.RFC3597{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: 251, Class: dns.ClassINET, Ttl: 300}, Rdata: "00"})
			return pack(t, r)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{MaxEntries: 10})
			qq, rb := qb, pack(t, good())
			if tc.query != nil {
				qq = tc.query()
			}
			if tc.reply != nil {
				rb = tc.reply()
			}
			if ok, why := c.put(1, qq, rb, "u"); ok {
				t.Errorf("cached, want refused")
			} else {
				t.Logf("refused: %s", why)
			}
		})
	}
	// The control: the good reply is cached.
	if !New(Config{MaxEntries: 10}).Put(1, qb, pack(t, good()), "u") {
		t.Fatal("good reply refused")
	}
}

func TestPoisoning(t *testing.T) {
	cl := newClock()
	c := testCache(t, cl)
	victim := query(t, "victim.example.", dns.TypeA, false, false)
	for _, tc := range []struct {
		name          string
		answer, extra []string
		cached        bool
	}{
		{"extra A in additional", []string{"bait.example. 300 IN A 192.0.2.1"}, []string{"victim.example. 86400 IN A 203.0.113.66"}, true},
		{"extra A in answer", []string{"bait.example. 300 IN A 192.0.2.1", "victim.example. 86400 IN A 203.0.113.66"}, nil, false},
		{"answer for another name only", []string{"victim.example. 86400 IN A 203.0.113.66"}, nil, false},
		{"cname chain then stray", []string{"bait.example. 300 IN CNAME c.example.", "c.example. 300 IN A 192.0.2.1", "victim.example. 300 IN A 203.0.113.66"}, nil, false},
		{"cname out of order", []string{"c.example. 300 IN A 192.0.2.1", "bait.example. 300 IN CNAME c.example."}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := query(t, "bait.example.", dns.TypeA, false, false)
			r := reply(t, q, 0, tc.answer, nil, tc.extra)
			if ok := c.Put(1, pack(t, q), pack(t, r), "10.0.0.1:53"); ok != tc.cached {
				t.Errorf("put: %v, want %v", ok, tc.cached)
			}
			if _, _, ok := get(t, c, 1, victim, 512); ok {
				t.Error("Get for victim.example hit")
			}
		})
	}
}

func TestChains(t *testing.T) {
	c := testCache(t, newClock())
	q := query(t, "www.Example.", dns.TypeA, false, false)
	mustPut(t, c, 1, q, reply(t, q, 0, []string{
		"www.example. 300 IN CNAME edge.cdn.example.",
		"EDGE.cdn.example. 60 IN CNAME e1.cdn.example.",
		"e1.cdn.example. 20 IN A 192.0.2.7",
	}, nil, nil))
	if m, ttl, ok := get(t, c, 1, q, 512); !ok || ttl != 20 || len(m.Answer) != 3 {
		t.Fatalf("ok %v ttl %d", ok, ttl)
	}
	q = query(t, "a.b.example.", dns.TypeA, false, false)
	mustPut(t, c, 1, q, reply(t, q, 0, []string{
		"b.example. 300 IN DNAME b.example.net.",
		"a.b.example. 300 IN CNAME a.b.example.net.",
		"a.b.example.net. 300 IN A 192.0.2.8",
	}, nil, nil))
	q = query(t, "x.example.", dns.TypeA, false, false)
	if c.Put(1, pack(t, q), pack(t, reply(t, q, 0, []string{"other.example. 300 IN DNAME b.example.net."}, nil, nil)), "u") {
		t.Error("cached a DNAME that is not an ancestor of the qname")
	}
}

func TestKeyBits(t *testing.T) {
	c := testCache(t, newClock())
	plain := query(t, "a.example.", dns.TypeA, false, false)
	mustPut(t, c, 1, plain, reply(t, plain, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil))
	for _, q := range []*dns.Msg{
		query(t, "a.example.", dns.TypeA, true, false),
		query(t, "a.example.", dns.TypeA, true, true),
		func() *dns.Msg {
			m := query(t, "a.example.", dns.TypeA, false, false)
			m.CheckingDisabled = true
			return m
		}(),
		query(t, "a.example.", dns.TypeAAAA, false, false),
		func() *dns.Msg {
			m := query(t, "a.example.", dns.TypeA, false, false)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}(),
	} {
		if _, _, ok := get(t, c, 1, q, 4096); ok {
			t.Errorf("hit for %v", q.Question[0])
		}
	}
	if _, _, ok := get(t, c, 2, plain, 512); ok {
		t.Error("hit in another partition")
	}
	m, _, ok := get(t, c, 1, plain, 512)
	if !ok || m.IsEdns0() != nil {
		t.Fatalf("ok %v, want a hit without OPT", ok)
	}
	edns := query(t, "a.example.", dns.TypeA, true, true)
	mustPut(t, c, 1, edns, reply(t, edns, 0, []string{"a.example. 300 IN A 192.0.2.2"}, nil, nil))
	if m, _, ok := get(t, c, 1, edns, 1232); !ok || m.IsEdns0() == nil || !m.IsEdns0().Do() {
		t.Error("DO query: want the DO reply")
	}
	if m, _, _ := get(t, c, 1, plain, 512); m.IsEdns0() != nil {
		t.Error("plain query got an OPT")
	}
}

func TestLimit(t *testing.T) {
	c := testCache(t, newClock())
	q := query(t, "big.example.", dns.TypeA, true, false)
	var ans []string
	for i := range 40 {
		ans = append(ans, fmt.Sprintf("big.example. 300 IN A 192.0.2.%d", i))
	}
	r := reply(t, q, 0, ans, nil, nil)
	mustPut(t, c, 1, q, r)
	n := len(pack(t, r))
	if _, _, ok := get(t, c, 1, q, n-1); ok {
		t.Errorf("hit for a %d-byte reply with limit %d", n, n-1)
	}
	if _, _, ok := get(t, c, 1, q, n); !ok {
		t.Errorf("miss with limit %d for a %d-byte reply", n, n)
	}
}

func TestLRU(t *testing.T) {
	cl := newClock()
	c := New(Config{MaxEntries: 3, Now: cl.now})
	if len(c.shards) != 1 {
		t.Fatalf("%d shards for 3 entries, want 1", len(c.shards))
	}
	qs := make([]*dns.Msg, 5)
	for i := range qs {
		qs[i] = query(t, fmt.Sprintf("n%d.example.", i), dns.TypeA, false, false)
	}
	put := func(i int) {
		mustPut(t, c, 1, qs[i], reply(t, qs[i], 0, []string{qs[i].Question[0].Name + " 300 IN A 192.0.2.1"}, nil, nil))
	}
	put(0)
	put(1)
	put(2)
	get(t, c, 1, qs[0], 512) // 0 is now the most recent; 1 the least
	put(3)
	if _, _, ok := get(t, c, 1, qs[1], 512); ok {
		t.Error("n1 (least recently used) survived")
	}
	for _, i := range []int{0, 2, 3} {
		if _, _, ok := get(t, c, 1, qs[i], 512); !ok {
			t.Errorf("n%d evicted", i)
		}
	}
	if s := c.Stats(); s.Evictions != 1 || s.Entries != 3 {
		t.Errorf("stats %+v, want 1 eviction, 3 entries", s)
	}

	// Bytes: a bound that holds two entries.
	one := int64(0)
	{
		c1 := New(Config{MaxEntries: 10})
		mustPut(t, c1, 1, qs[0], reply(t, qs[0], 0, []string{"n0.example. 300 IN A 192.0.2.1"}, nil, nil))
		one = c1.Stats().Bytes
	}
	c = New(Config{MaxEntries: 10, MaxBytes: 2*one + one/2, Now: cl.now})
	put2 := func(i int) {
		mustPut(t, c, 1, qs[i], reply(t, qs[i], 0, []string{qs[i].Question[0].Name + " 300 IN A 192.0.2.1"}, nil, nil))
	}
	put2(0)
	put2(1)
	put2(2)
	if s := c.Stats(); s.Entries != 2 || s.Evictions != 1 || s.Bytes > 2*one+one/2 {
		t.Errorf("stats %+v, want 2 entries and 1 eviction within %d bytes", s, 2*one+one/2)
	}
	// Replacing an entry is not an eviction.
	put2(2)
	if s := c.Stats(); s.Entries != 2 || s.Evictions != 1 {
		t.Errorf("after a re-put: stats %+v", s)
	}
	// An expired entry that Get removes is a miss, not an eviction.
	cl.add(300 * time.Second)
	if _, _, ok := get(t, c, 1, qs[2], 512); ok {
		t.Error("hit after expiry")
	}
	if s := c.Stats(); s.Entries != 1 || s.Evictions != 1 {
		t.Errorf("after expiry: stats %+v, want 1 entry, still 1 eviction", s)
	}
}

func TestFlushAndPartitions(t *testing.T) {
	c := testCache(t, newClock())
	a, b := c.Partition("10.0.0.1:53 host"), c.Partition("10.0.0.2:53 /run/netns/x")
	if a == b || c.Partition("10.0.0.1:53 host") != a {
		t.Fatalf("partitions %d %d: want distinct, stable ids", a, b)
	}
	q := query(t, "a.example.", dns.TypeA, false, false)
	r := reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil)
	mustPut(t, c, a, q, r)
	mustPut(t, c, b, q, r)
	c.Flush(a)
	if _, _, ok := get(t, c, a, q, 512); ok {
		t.Error("hit in the flushed partition")
	}
	if _, _, ok := get(t, c, b, q, 512); !ok {
		t.Error("miss in the other partition")
	}
	if s := c.Stats(); s.Entries != 1 || s.Evictions != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestNil(t *testing.T) {
	var c *Cache = New(Config{})
	if c != nil {
		t.Fatal("New with MaxEntries 0: want nil")
	}
	q := query(t, "a.example.", dns.TypeA, false, false)
	if _, _, _, ok := c.Get(c.Partition("x"), pack(t, q), 512, nil); ok {
		t.Error("nil cache hit")
	}
	if c.Put(1, pack(t, q), pack(t, reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil)), "u") {
		t.Error("nil cache stored")
	}
	c.Flush(1)
	if c.Stats() != (Stats{}) {
		t.Error("nil cache stats")
	}
}

func TestGetReusesDst(t *testing.T) {
	c := testCache(t, newClock())
	q := query(t, "a.example.", dns.TypeA, false, false)
	mustPut(t, c, 1, q, reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil))
	qb := pack(t, q)
	dst := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, _, ok := c.Get(1, qb, 512, dst); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Errorf("Get hit: %v allocs, want 0", allocs)
	}
	now := time.Now()
	if allocs := testing.AllocsPerRun(100, func() { c.GetAt(1, qb, 512, dst, now) }); allocs != 0 {
		t.Errorf("GetAt hit: %v allocs, want 0", allocs)
	}
}

func TestGetAtUsesItsTime(t *testing.T) {
	cl := newClock()
	c := testCache(t, cl)
	q := query(t, "a.example.", dns.TypeA, false, false)
	mustPut(t, c, 1, q, reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil))
	qb := pack(t, q)
	if _, ttl, _, ok := c.GetAt(1, qb, 512, nil, cl.t.Add(100*time.Second)); !ok || ttl != 200 {
		t.Errorf("GetAt +100s: ok %v ttl %d, want 200", ok, ttl)
	}
	if _, _, _, ok := c.GetAt(1, qb, 512, nil, cl.t.Add(300*time.Second)); ok {
		t.Error("GetAt +300s: hit, want expired")
	}
}

// dnssecReplies are replies with the record types rdataOK checks beyond the plain ones.
func dnssecReplies(t testing.TB) [][2]*dns.Msg {
	t.Helper()
	const sig = "RRSIG A 13 2 300 20270101000000 20260101000000 12345 example. dGVzdHNpZ25hdHVyZQ=="
	var out [][2]*dns.Msg
	add := func(name string, qtype uint16, rcode int, answer, ns []string) {
		q := query(t, name, qtype, true, true)
		out = append(out, [2]*dns.Msg{q, reply(t, q, rcode, answer, ns, nil)})
	}
	add("s.example.", dns.TypeA, 0, []string{"s.example. 300 IN A 192.0.2.1", "s.example. 300 IN " + sig}, nil)
	add("example.", dns.TypeDS, 0, []string{"example. 300 IN DS 12345 13 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE"}, nil)
	add("example.", dns.TypeDNSKEY, 0, []string{"example. 300 IN DNSKEY 257 3 13 dGVzdGtleQ=="}, nil)
	add("example.", dns.TypeCAA, 0, []string{`example. 300 IN CAA 0 issue "letsencrypt.org"`}, nil)
	add("gone.example.", dns.TypeA, dns.RcodeNameError, nil, []string{soa,
		"example. 300 IN " + strings.Replace(sig, "RRSIG A", "RRSIG SOA", 1),
		"fine.example. 300 IN NSEC www.example. A AAAA RRSIG NSEC"})
	add("gone.example.", dns.TypeAAAA, 0, nil, []string{soa,
		"2vptu5timamqttgl4luu9kg21e0aor3s.example. 300 IN NSEC3 1 0 0 AABB 2vptu5timamqttgl4luu9kg21e0aor3t A RRSIG"})
	return out
}

func TestDNSSECAndCAA(t *testing.T) {
	c := testCache(t, newClock())
	for _, qr := range dnssecReplies(t) {
		mustPut(t, c, 1, qr[0], qr[1])
		m, _, ok := get(t, c, 1, qr[0], 4096)
		if !ok {
			t.Fatalf("%v: miss", qr[0].Question[0])
		}
		if len(m.Answer) != len(qr[1].Answer) || len(m.Ns) != len(qr[1].Ns) {
			t.Errorf("%v: got %v", qr[0].Question[0], m)
		}
	}
	// A bad bitmap (an empty window) is refused, as miekg refuses it.
	q := query(t, "gone.example.", dns.TypeMX, true, true)
	b := pack(t, reply(t, q, dns.RcodeNameError, nil, []string{soa, "fine.example. 300 IN NSEC www.example. A"}, nil))
	// The NSEC's bitmap is its rdata's last 3 bytes (window 0, length 1, 0x40), before the OPT.
	b[len(b)-11-2] = 0
	if ok, _ := c.put(1, pack(t, q), b, "u"); ok {
		t.Error("cached an NSEC with an empty bitmap window")
	}
	var m dns.Msg
	if m.Unpack(b) == nil {
		t.Error("control: miekg unpacked the bad bitmap")
	}
}

// TestGetCopies checks that a reply Get returned is the caller's: writing over it changes
// nothing the next Get returns.
func TestGetCopies(t *testing.T) {
	c := testCache(t, newClock())
	q := query(t, "a.example.", dns.TypeA, true, false)
	mustPut(t, c, 1, q, reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil))
	qb := pack(t, q)
	first, _, _, _ := c.Get(1, qb, 512, nil)
	want := string(first)
	for i := range first {
		first[i] = 0xFF
	}
	if again, _, _, ok := c.Get(1, qb, 512, nil); !ok || string(again) != want {
		t.Error("the second Get differs after the first's bytes were overwritten")
	}
}

// TestOneUpstreamQueryPerTTL plays the relay: 1,000 client queries, one a second, each
// answered from the cache or else by an upstream (a counter) whose reply is Put. With a
// TTL of 300 s, the upstream sees one query per 300 s window.
func TestOneUpstreamQueryPerTTL(t *testing.T) {
	cl := newClock()
	c := testCache(t, cl)
	p := c.Partition("10.0.0.1:53 host")
	upstream := 0
	for i := range 1000 {
		q := query(t, "www.example.", dns.TypeA, i%2 == 0, false)
		q.Id = uint16(i)
		if _, _, ok := get(t, c, p, q, 1232); !ok {
			upstream++
			mustPut(t, c, p, q, reply(t, q, 0, []string{"www.example. 300 IN A 192.0.2.1"}, nil, nil))
		}
		cl.add(time.Second)
	}
	// Two keys (with and without EDNS), each fetched at 0, 300, 600 and 900 s.
	if upstream != 8 {
		t.Errorf("%d upstream queries for 1,000 client queries over 1,000 s, want 8 (4 windows x 2 keys)", upstream)
	}
}

// TestADBit: a reply stored with AD set (the first client set AD, as dig does) is served
// with AD only to a query that set AD or DO (RFC 6840 5.8), not to a plain stub's.
func TestADBit(t *testing.T) {
	c := testCache(t, newClock())
	withAD := query(t, "a.example.", dns.TypeA, false, false)
	withAD.AuthenticatedData = true
	r := reply(t, withAD, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil)
	r.AuthenticatedData = true
	mustPut(t, c, 1, withAD, r)
	if m, _, ok := get(t, c, 1, withAD, 512); !ok || !m.AuthenticatedData {
		t.Errorf("AD query: ok %v, want a hit with AD", ok)
	}
	if m, _, ok := get(t, c, 1, query(t, "a.example.", dns.TypeA, false, false), 512); !ok || m.AuthenticatedData {
		t.Errorf("plain query: ok %v, want a hit without AD", ok)
	}

	do := query(t, "b.example.", dns.TypeA, true, true)
	do.AuthenticatedData = true
	r = reply(t, do, 0, []string{"b.example. 300 IN A 192.0.2.2"}, nil, nil)
	r.AuthenticatedData = true
	mustPut(t, c, 1, do, r)
	do.AuthenticatedData = false
	if m, _, ok := get(t, c, 1, do, 1232); !ok || !m.AuthenticatedData {
		t.Errorf("DO query without AD: ok %v, want a hit with AD", ok)
	}
}

// TestServfailKeepsLiveEntry: a forward that failed for a client that missed a live entry
// only for its size (a 512-byte client, a bigger cached reply) does not replace that entry
// with the failure; after the entry expires, the failure is remembered as always.
func TestServfailKeepsLiveEntry(t *testing.T) {
	cl := newClock()
	c := testCache(t, cl)
	q := query(t, "big.example.", dns.TypeTXT, true, false)
	var answer []string
	for i := range 8 {
		answer = append(answer, fmt.Sprintf(`big.example. 300 IN TXT "%0100d"`, i))
	}
	mustPut(t, c, 1, q, reply(t, q, 0, answer, nil, nil))
	if _, _, ok := get(t, c, 1, q, 512); ok {
		t.Fatal("a reply over 512 bytes served to a 512-byte client")
	}
	fail := reply(t, q, dns.RcodeServerFailure, nil, nil, nil)
	if ok, _ := c.put(1, pack(t, q), pack(t, fail), "10.0.0.1:53"); ok {
		t.Error("SERVFAIL replaced a live entry")
	}
	if m, _, ok := get(t, c, 1, q, 4096); !ok || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 8 {
		t.Errorf("4096-byte client: ok %v, want the cached answer", ok)
	}
	cl.add(300 * time.Second)
	mustPut(t, c, 1, q, fail)
	if m, _, ok := get(t, c, 1, q, 4096); !ok || m.Rcode != dns.RcodeServerFailure {
		t.Errorf("after expiry: ok %v, want the remembered SERVFAIL", ok)
	}
}
