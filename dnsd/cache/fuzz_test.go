package cache

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"
)

// FuzzPut feeds arbitrary replies (and queries) to Put: it never panics, and whatever it
// stores, Get returns with the query's ID; whenever miekg unpacks the stored reply, it
// unpacks Get's too, and the two are the same message but for ID, RD, CD, AD, question
// case, TTLs and the COOKIE option.
func FuzzPut(f *testing.F) {
	for i := range 16 {
		q, r := realistic(f, i)
		f.Add(pack(f, q), pack(f, r))
	}
	q := query(f, "a.b.example.", dns.TypeA, true, true)
	f.Add(pack(f, q), pack(f, reply(f, q, 0, []string{
		"b.example. 300 IN DNAME b.example.net.",
		"a.b.example. 300 IN CNAME a.b.example.net.",
		"a.b.example.net. 300 IN A 192.0.2.8",
	}, []string{"example. 300 IN NS ns.example."}, []string{"ns.example. 300 IN A 192.0.2.53"})))
	q = query(f, "m.example.", dns.TypeMX, false, false)
	f.Add(pack(f, q), pack(f, reply(f, q, 0, []string{"m.example. 300 IN MX 10 mail.example."}, nil, nil)))
	q = query(f, "t.example.", dns.TypeTXT, true, false)
	f.Add(pack(f, q), pack(f, reply(f, q, 0, []string{`t.example. 300 IN TXT "v=spf1 -all" "x"`}, nil, nil)))
	q = query(f, "_s._tcp.example.", dns.TypeSRV, false, false)
	f.Add(pack(f, q), pack(f, reply(f, q, 0, []string{"_s._tcp.example. 300 IN SRV 0 5 443 h.example."}, nil, nil)))
	q = query(f, "down.example.", dns.TypeA, true, false)
	f.Add(pack(f, q), pack(f, reply(f, q, dns.RcodeServerFailure, nil, nil, nil)))

	q = query(f, "a.example.", dns.TypeHTTPS, true, false)
	f.Add(pack(f, q), pack(f, withCookie(f, reply(f, q, 0, []string{`a.example. 300 IN HTTPS 1 . alpn="h3,h2" ipv4hint="192.0.2.1"`}, nil, nil))))
	q = query(f, "a.example.", dns.TypeNAPTR, true, false)
	f.Add(pack(f, q), pack(f, reply(f, q, 0, []string{`a.example. 300 IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.example.`,
		"a.example. 300 IN RP admin.example. a.example.", "a.example. 300 IN PX 10 a.example. b.example."}, nil, nil)))
	for _, qr := range dnssecReplies(f) {
		f.Add(pack(f, qr[0]), pack(f, qr[1]))
	}

	f.Fuzz(func(t *testing.T, query, reply []byte) {
		c := New(Config{MaxEntries: 10})
		if !c.Put(1, query, reply, "u") {
			return
		}
		b, _, _, ok := c.Get(1, query, 65535, nil)
		if !ok {
			t.Fatal("stored, then missed")
		}
		if !bytes.Equal(b[:2], query[:2]) {
			t.Fatalf("ID %x, query's %x", b[:2], query[:2])
		}
		var orig dns.Msg
		if orig.Unpack(reply) != nil {
			return // Get serves the upstream's bytes: unreadable as they were
		}
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatalf("miekg unpacks the stored reply but not Get's: %v\n%x\n%x", err, reply, b)
		}
		if got, want, ok := sameReply(&m, &orig); !ok {
			t.Fatalf("Get's reply\n%s\nis not the stored\n%s", got, want)
		}
	})
}
