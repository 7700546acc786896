package dnsd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
)

// FuzzHandler feeds arbitrary packets to both UDP paths (the inline fast path and the
// general one: miekg's accept checks, unpack, ServeDNS) and checks every reply: it unpacks,
// echoes the ID and the question, is a response, and fits the client's UDP size (512, or
// the EDNS size it advertised). Names the resolver does not own go to a live test
// upstream, so the forwarded path is exercised too.
func FuzzHandler(f *testing.F) {
	for _, m := range []*dns.Msg{
		question("web.", dns.TypeA), question("WWW.n1.", dns.TypeAAAA), question("many.", dns.TypeA),
		question("3.0.30.172.in-addr.arpa.", dns.TypePTR), question("web.", dns.TypeMX),
		question("test.example.", dns.TypeA), question("web.", dns.TypeTXT),
	} {
		b, _ := m.Pack()
		f.Add(b)
		m.SetEdns0(4096, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}) // RFC 9267 pointer loop
	f.Add([]byte{0, 2, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1})     // opcode UPDATE
	st := newFixture(f, "")
	addSandboxes(f, st, 40, "many")
	u := newUpstream(f, "127.0.0.1")
	s := newTestServer(f, st, Config{}, u)
	h := s.newHandler(context.Background(), clientID, "")
	var sc scratch
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) < minQuery {
			return // the reader drops these before any path
		}
		limit := clientLimit(pkt)
		if reply, ok := h.fast(pkt, &sc); ok {
			checkReply(t, "fast", pkt, reply, limit)
		}
		w := dnstest.NewWriter("udp")
		if req := accept(pkt, w); req != nil {
			h.ServeDNS(w, req)
		}
		if w.Raw != nil {
			checkReply(t, "general", pkt, w.Raw, limit)
		}
	})
}

// clientLimit is the largest UDP reply the query allows: 512, or its EDNS size.
func clientLimit(pkt []byte) int {
	m := new(dns.Msg)
	if m.Unpack(pkt) != nil {
		return dns.MinMsgSize
	}
	if o := m.IsEdns0(); o != nil && int(o.UDPSize()) > dns.MinMsgSize {
		return int(o.UDPSize())
	}
	return dns.MinMsgSize
}

func checkReply(t *testing.T, path string, pkt, reply []byte, limit int) {
	t.Helper()
	r := new(dns.Msg)
	if err := r.Unpack(reply); err != nil {
		t.Fatalf("%s: reply does not unpack: %v\nquery %x\nreply %x", path, err, pkt, reply)
	}
	if !bytes.Equal(reply[:2], pkt[:2]) || !r.Response {
		t.Fatalf("%s: reply id %x (qr %v), query id %x", path, reply[:2], r.Response, pkt[:2])
	}
	q := new(dns.Msg)
	if q.Unpack(pkt) == nil && len(q.Question) == 1 && len(r.Question) == 1 {
		a, b := q.Question[0], r.Question[0]
		if !strings.EqualFold(a.Name, b.Name) || a.Qtype != b.Qtype || a.Qclass != b.Qclass {
			t.Fatalf("%s: question %v echoed as %v", path, a, b)
		}
	}
	// Forwarded replies are relayed verbatim (an upstream may ignore EDNS), so the size bound
	// is checked only on answers berth builds itself.
	if !r.RecursionAvailable || r.Rcode != dns.RcodeSuccess {
		return
	}
	if len(r.Answer) > 0 && r.Answer[0].Header().Ttl == localTTL && len(reply) > limit {
		t.Fatalf("%s: local reply of %d bytes for a client limit of %d", path, len(reply), limit)
	}
}
