package cache

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestTypesCached stores replies with the record types real clients ask for beyond the
// plain ones: opaque rdata (cached as bytes) and rdata with names (walked), and checks
// that Get serves them record for record.
func TestTypesCached(t *testing.T) {
	for _, tc := range []struct {
		qtype uint16
		rr    string
	}{
		{dns.TypeHTTPS, `a.example. 300 IN HTTPS 1 . alpn="h3,h2" ipv4hint="192.0.2.1" ipv6hint="2001:db8::1"`},
		{dns.TypeHTTPS, "a.example. 300 IN HTTPS 0 svc.example."},
		{dns.TypeSVCB, `a.example. 300 IN SVCB 1 svc.example. port="8443" alpn="h2"`},
		{dns.TypeTLSA, "a.example. 300 IN TLSA 3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6"},
		{dns.TypeSSHFP, "a.example. 300 IN SSHFP 4 2 123456789ABCDEF67890123456789ABCDEF67890123456789ABCDEF123456789"},
		{dns.TypeLOC, "a.example. 300 IN LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m"},
		{dns.TypeURI, `a.example. 300 IN URI 10 1 "https://www.example.com/"`},
		{dns.TypeHINFO, `a.example. 300 IN HINFO "cpu" "os"`},
		{dns.TypeCAA, `a.example. 300 IN CAA 128 tbs "Unknown"`},
		{dns.TypeOPENPGPKEY, "a.example. 300 IN OPENPGPKEY dGVzdGtleQ=="},
		{dns.TypeNAPTR, `a.example. 300 IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.example.`},
		{dns.TypeNAPTR, `a.example. 300 IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .`},
		{dns.TypeRP, "a.example. 300 IN RP admin.example. txt.example."},
		{dns.TypeAFSDB, "a.example. 300 IN AFSDB 1 afs.example."},
		{dns.TypeRT, "a.example. 300 IN RT 10 relay.example."},
		{dns.TypeKX, "a.example. 300 IN KX 10 kx.example."},
		{dns.TypePX, "a.example. 300 IN PX 10 map822.example. mapx400.example."},
		{dns.TypeMINFO, "a.example. 300 IN MINFO rmail.example. email.example."},
		{dns.TypeMB, "a.example. 300 IN MB mbox.example."},
		{dns.TypeMG, "a.example. 300 IN MG mg.example."},
		{dns.TypeMR, "a.example. 300 IN MR mr.example."},
		{dns.TypeMD, "a.example. 300 IN MD md.example."},
		{dns.TypeMF, "a.example. 300 IN MF mf.example."},
		{65280, `a.example. 300 IN TYPE65280 \# 3 abcdef`}, // private use: opaque
	} {
		t.Run(dns.TypeToString[tc.qtype], func(t *testing.T) {
			c := testCache(t, newClock())
			q := query(t, "a.example.", tc.qtype, true, true)
			r := reply(t, q, 0, []string{tc.rr}, nil, nil)
			mustPut(t, c, 1, q, r)
			m, _, ok := get(t, c, 1, q, 4096)
			if !ok {
				t.Fatal("miss")
			}
			// What the upstream's client would read: miekg's unpacking of the packed reply.
			var want dns.Msg
			if err := want.Unpack(pack(t, r)); err != nil {
				t.Fatal(err)
			}
			if len(m.Answer) != 1 || m.Answer[0].String() != want.Answer[0].String() {
				t.Errorf("got %v, want %v", m.Answer, want.Answer)
			}
		})
	}
}

// TestNamedRdataMalformed cuts the last byte off rdata that holds names: the name runs
// past its rdata, which miekg refuses, so the cache must too.
func TestNamedRdataMalformed(t *testing.T) {
	for _, s := range []string{
		"a.example. 300 IN RP admin.example. txt.example.",
		"a.example. 300 IN AFSDB 1 afs.example.",
		"a.example. 300 IN KX 10 kx.example.",
		"a.example. 300 IN PX 10 map822.example. mapx400.example.",
		"a.example. 300 IN MINFO rmail.example. email.example.",
		"a.example. 300 IN MB mbox.example.",
		`a.example. 300 IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.example.`,
		"a.example. 300 IN CNAME b.example.",
		"a.example. 300 IN SOA ns.example. admin.example. 1 7200 900 1209600 60",
	} {
		rec := rr(t, s)
		t.Run(dns.TypeToString[rec.Header().Rrtype], func(t *testing.T) {
			q := query(t, "a.example.", rec.Header().Rrtype, false, false)
			r := reply(t, q, 0, []string{s}, nil, nil)
			r.Compress = false
			b := pack(t, r)
			// The one answer is the last record: shorten its rdlength and the message.
			_, _, rdata, end, ok := skipRR(b, len(pack(t, q)))
			if !ok || end != len(b) {
				t.Fatalf("control: answer at %d..%d of %d", rdata, end, len(b))
			}
			binary.BigEndian.PutUint16(b[rdata-2:], uint16(end-rdata-1))
			b = b[:len(b)-1]
			if ok, _ := New(Config{MaxEntries: 10}).put(1, pack(t, q), b, "u"); ok {
				t.Error("cached rdata whose name runs past it")
			}
			var m dns.Msg
			if err := m.Unpack(b); err == nil {
				t.Errorf("control: miekg unpacked it: %v", m.Answer)
			}
		})
	}
}

// withCookie is r with a client and server cookie in its OPT, after an NSID, as BIND and
// Unbound answer a query that carried a cookie.
func withCookie(t testing.TB, r *dns.Msg) *dns.Msg {
	t.Helper()
	o := r.IsEdns0()
	if o == nil {
		t.Fatal("no OPT")
	}
	o.Option = append(o.Option,
		&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e7331"},
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708" + "1112131415161718191a1b1c1d1e1f20"})
	return r
}

func TestCookieStripped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(q *dns.Msg) *dns.Msg
	}{
		{"answer", func(q *dns.Msg) *dns.Msg {
			return reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1", "a.example. 300 IN A 192.0.2.2"}, nil, nil)
		}},
		{"nxdomain", func(q *dns.Msg) *dns.Msg { // The SOA's TTL is the negative lifetime, which Put stores as it is.
			return reply(t, q, dns.RcodeNameError, nil, []string{strings.Replace(soa, " 3600 ", " 60 ", 1)}, nil)
		}},
		{"cookie first", func(q *dns.Msg) *dns.Msg {
			r := reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1"}, nil, nil)
			o := r.IsEdns0()
			o.Option = []dns.EDNS0{
				&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708" + "1112131415161718191a1b1c1d1e1f20"},
				&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e7331"},
			}
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCache(t, newClock())
			q := query(t, "a.example.", dns.TypeA, true, false)
			plain := tc.reply(q)
			r := plain.Copy()
			if len(r.IsEdns0().Option) == 0 {
				r = withCookie(t, r)
				plain.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e7331"}}
			} else {
				plain.IsEdns0().Option = plain.IsEdns0().Option[1:]
			}
			rb := pack(t, r)
			mustPut(t, c, 1, q, r)
			// The client sent a cookie too (dig does); the key ignores it.
			qc := q.Copy()
			qc.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
			for _, qq := range []*dns.Msg{q, qc} {
				b, _, _, ok := c.Get(1, pack(t, qq), 4096, nil)
				if !ok {
					t.Fatal("miss")
				}
				if want := len(rb) - 4 - 24; len(b) != want {
					t.Errorf("served %d bytes, want %d (the %d of the reply less the COOKIE)", len(b), want, len(rb))
				}
				// Byte for byte the reply without its cookie (miekg packs the same way).
				want := pack(t, plain)
				want[0], want[1] = b[0], b[1]
				if !bytes.Equal(b, want) {
					t.Errorf("served\n%x\nwant\n%x", b, want)
				}
				var m dns.Msg
				if err := m.Unpack(b); err != nil {
					t.Fatalf("unpack: %v", err)
				}
				for _, o := range m.IsEdns0().Option {
					if o.Option() == dns.EDNS0COOKIE {
						t.Errorf("served a COOKIE: %v", o)
					}
				}
			}
		})
	}
}

// TestPutAllocs: one allocation per stored entry once the cache is full (it evicts one
// per Put), none for a refused reply.
func TestPutAllocs(t *testing.T) {
	const n = 256
	qs, rs := make([][]byte, n), make([][]byte, n)
	for i := range n {
		q, r := realistic(t, i)
		if i%3 == 0 && r.IsEdns0() != nil {
			r = withCookie(t, r.Copy())
		}
		qs[i], rs[i] = pack(t, q), pack(t, r)
	}
	c := New(Config{MaxEntries: n / 4})
	i := 0
	next := func() int { i++; return i % n }
	for range n {
		j := next()
		c.Put(1, qs[j], rs[j], "10.0.0.1:53")
	}
	if a := testing.AllocsPerRun(1000, func() {
		j := next()
		if !c.Put(1, qs[j], rs[j], "10.0.0.1:53") {
			t.Fatal("refused")
		}
	}); a != 1 {
		t.Errorf("evicting Put: %v allocations, want 1", a)
	}
	q := query(t, "a.example.", dns.TypeA, true, false)
	qb := pack(t, q)
	for name, r := range map[string]*dns.Msg{
		"ttl 0":     reply(t, q, 0, []string{"a.example. 0 IN A 192.0.2.1"}, nil, nil),
		"refused":   reply(t, q, dns.RcodeRefused, nil, nil, nil),
		"no soa":    reply(t, q, dns.RcodeNameError, nil, nil, nil),
		"off chain": reply(t, q, 0, []string{"a.example. 300 IN A 192.0.2.1", "a.example. 300 IN CNAME b.example.", "c.example. 300 IN A 192.0.2.3"}, nil, nil),
	} {
		rb := pack(t, r)
		if a := testing.AllocsPerRun(100, func() {
			if c.Put(1, qb, rb, "u") {
				t.Fatal("cached")
			}
		}); a != 0 {
			t.Errorf("refused %s: %v allocations, want 0", name, a)
		}
	}
}

// sameReply reports whether got, Get's reply, is want, the stored reply, but for what Get
// and Put change: ID, RD, CD, question case, TTLs and the COOKIE option; and AD cleared
// (for a query with neither AD nor DO, TestADBit), never set.
func sameReply(got, want *dns.Msg) (string, string, bool) {
	w := want.Copy()
	w.Id, w.RecursionDesired, w.CheckingDisabled = got.Id, got.RecursionDesired, got.CheckingDisabled
	if !got.AuthenticatedData {
		w.AuthenticatedData = false
	}
	norm := func(m *dns.Msg) string {
		for _, s := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for _, r := range s {
				if o, ok := r.(*dns.OPT); ok {
					var keep []dns.EDNS0
					for _, e := range o.Option {
						if e.Option() != dns.EDNS0COOKIE {
							keep = append(keep, e)
						}
					}
					o.Option = keep
					continue
				}
				r.Header().Ttl = 0
			}
		}
		return strings.ToLower(m.String())
	}
	g, ws := norm(got.Copy()), norm(w)
	return g, ws, g == ws
}
