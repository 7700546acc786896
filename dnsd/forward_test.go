package dnsd

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
)

// TestForward covers names the resolver does not own: relayed verbatim from upstream.
func TestForward(t *testing.T) {
	st := newFixture(t, "")
	u := newUpstream(t, "127.0.0.1")
	s := newTestServer(t, st, Config{}, u)

	t.Run("found upstream", func(t *testing.T) {
		r := question("test.example.", dns.TypeA)
		got := query(t, s, "udp", r)
		if got.Rcode != dns.RcodeSuccess || len(got.Answer) != 1 || got.Answer[0].(*dns.A).A.String() != "10.11.12.13" || got.Id != r.Id {
			t.Errorf("got %v; want 10.11.12.13 with the client's id %d", got, r.Id)
		}
	})
	t.Run("nxdomain and soa relayed", func(t *testing.T) {
		got := query(t, s, "udp", question("nosuch.example.", dns.TypeA))
		if got.Rcode != dns.RcodeNameError || len(got.Ns) != 1 || got.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("got %v; want NXDOMAIN with the upstream's SOA", got)
		}
	})
	t.Run("other types of local names forwarded", func(t *testing.T) {
		for _, qt := range []uint16{dns.TypeTXT, dns.TypeCNAME, dns.TypeANY, dns.TypeSRV} {
			before := len(u.seen())
			got := query(t, s, "udp", question("web.", qt))
			if got.Rcode != dns.RcodeNameError || len(u.seen()) != before+1 {
				t.Errorf("%s web: got %s, upstream queries %d; want forwarded NXDOMAIN", dns.TypeToString[qt], dns.RcodeToString[got.Rcode], len(u.seen())-before)
			}
		}
	})
	t.Run("class other than IN forwarded", func(t *testing.T) {
		r := question("web.", dns.TypeA)
		r.Question[0].Qclass = dns.ClassCHAOS
		before := len(u.seen())
		query(t, s, "udp", r)
		if len(u.seen()) != before+1 {
			t.Errorf("CH A web was not forwarded")
		}
	})
	t.Run("tcp forwarded over tcp", func(t *testing.T) {
		got := query(t, s, "tcp", question("test.example.", dns.TypeA))
		q := u.seen()
		if len(got.Answer) != 1 || q[len(q)-1].proto != "tcp" {
			t.Errorf("got %v via %s; want the answer over tcp", got, q[len(q)-1].proto)
		}
	})
	t.Run("fresh random id", func(t *testing.T) {
		r := question("test.example.", dns.TypeA)
		r.Id = 4242
		before := len(u.seen())
		for range 8 {
			if got := query(t, s, "udp", r); got.Id != 4242 {
				t.Fatalf("got id %d; want the client's 4242", got.Id)
			}
		}
		ids := map[uint16]bool{}
		for _, q := range u.seen()[before:] {
			ids[q.id] = true
		}
		if ids[4242] || len(ids) < 7 {
			t.Errorf("upstream ids %v; want fresh random ids, never the client's", ids)
		}
	})
	t.Run("large reply without edns relayed whole", func(t *testing.T) {
		u.setReply(func(r *dns.Msg) *dns.Msg {
			m := new(dns.Msg)
			m.SetReply(r)
			for i := range 60 {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A: net.IPv4(10, 0, 0, byte(i))})
			}
			return m
		})
		defer u.setReply(daft)
		got := query(t, s, "udp", question("big.example.", dns.TypeA))
		if len(got.Answer) != 60 || got.Truncated {
			t.Errorf("got %d answers TC %v; want all 60 as the upstream sent them (moby #44575)", len(got.Answer), got.Truncated)
		}
	})
}

// TestFailover: next upstream on SERVFAIL, REFUSED, timeout and dial error; SERVFAIL (RA
// set) when all fail or none exist; any other rcode is final.
func TestFailover(t *testing.T) {
	st := newFixture(t, "")
	servfail := newUpstream(t, "127.0.0.1")
	servfail.setReply(rcodeReply(dns.RcodeServerFailure))
	refused := newUpstream(t, "127.0.0.1")
	refused.setReply(rcodeReply(dns.RcodeRefused))
	dead := newUpstream(t, "127.0.0.1")
	dead.setReply(nil)
	good := newUpstream(t, "127.0.0.1")
	closed := &upstream{addr: netip.MustParseAddrPort("127.0.0.1:1")} // nothing listens: ICMP / RST
	cfg := Config{ForwardTimeout: 200 * time.Millisecond}

	tests := []struct {
		name  string
		ups   []*upstream
		proto string
		want  int
	}{
		{"servfail then good", []*upstream{servfail, good}, "udp", dns.RcodeNameError},
		{"refused then good", []*upstream{refused, good}, "udp", dns.RcodeNameError},
		{"timeout then good", []*upstream{dead, good}, "udp", dns.RcodeNameError},
		{"closed port then good", []*upstream{closed, good}, "udp", dns.RcodeNameError},
		{"closed port then good, tcp", []*upstream{closed, good}, "tcp", dns.RcodeNameError},
		{"all fail", []*upstream{servfail, refused, dead}, "udp", dns.RcodeServerFailure},
		{"none", nil, "udp", dns.RcodeServerFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, st, cfg, tc.ups...)
			before := len(good.seen())
			got := query(t, s, tc.proto, question("nosuch.example.", dns.TypeA))
			if got.Rcode != tc.want {
				t.Errorf("got %s; want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.want])
			}
			if tc.want == dns.RcodeServerFailure && !got.RecursionAvailable {
				t.Errorf("local SERVFAIL has RA clear; want set (Docker clears it)")
			}
			if tc.want != dns.RcodeServerFailure && len(good.seen()) != before+1 {
				t.Errorf("good upstream got %d queries; want 1", len(good.seen())-before)
			}
		})
	}
	t.Run("nxdomain is final", func(t *testing.T) {
		s := newTestServer(t, st, cfg, good, servfail)
		before := len(servfail.seen())
		query(t, s, "udp", question("nosuch.example.", dns.TypeA))
		if n := len(servfail.seen()) - before; n != 0 {
			t.Errorf("second upstream got %d queries after an NXDOMAIN; want 0", n)
		}
	})
}

// TestMismatchIgnored: a reply with the wrong id or question, even from the right server,
// is dropped and the real one taken.
func TestMismatchIgnored(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:n]) != nil {
				continue
			}
			send := func(m *dns.Msg) {
				b, _ := m.Pack()
				pc.WriteTo(b, from)
			}
			wrongID := daft(r)
			wrongID.Id = r.Id + 1
			wrongQ := daft(r)
			wrongQ.Question[0].Name = "other.example."
			wrongQ.Rcode = dns.RcodeRefused
			send(wrongID)
			send(wrongQ)
			right := daft(r)
			right.Rcode = dns.RcodeSuccess
			right.Ns = nil
			right.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{"right"}}}
			send(right)
		}
	}()
	s := newTestServer(t, newFixture(t, ""), Config{ForwardTimeout: time.Second},
		&upstream{addr: netip.MustParseAddrPort(pc.LocalAddr().String())})
	got := query(t, s, "udp", question("Spoof.Example.", dns.TypeTXT))
	if got.Rcode != dns.RcodeSuccess || len(got.Answer) != 1 || got.Answer[0].(*dns.TXT).Txt[0] != "right" {
		t.Errorf("got %v; want the matching reply", got)
	}
}

// TestInflightLimit: beyond MaxInflight forwarded queries, a query waits QueueWait and is
// REFUSED; local names still answer.
func TestInflightLimit(t *testing.T) {
	u := newUpstream(t, "127.0.0.1")
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	u.setReply(func(r *dns.Msg) *dns.Msg { <-release; return daft(r) })
	s := newTestServer(t, newFixture(t, ""), Config{MaxInflight: 1, QueueWait: 20 * time.Millisecond}, u)
	h := s.newHandler(context.Background(), clientID, "")

	first := make(chan *dns.Msg)
	go func() {
		w := dnstest.NewWriter("udp")
		h.ServeDNS(w, question("test.example.", dns.TypeA))
		first <- w.Msg
	}()
	for len(u.seen()) == 0 {
		time.Sleep(time.Millisecond)
	}
	w := dnstest.NewWriter("udp")
	h.ServeDNS(w, question("test.example.", dns.TypeA))
	if w.Msg.Rcode != dns.RcodeRefused {
		t.Errorf("second query: got %s; want REFUSED", dns.RcodeToString[w.Msg.Rcode])
	}
	w = dnstest.NewWriter("udp")
	h.ServeDNS(w, question("web.", dns.TypeA))
	if len(w.Msg.Answer) != 1 {
		t.Errorf("local name while full: got %v; want answered", w.Msg)
	}
	once.Do(func() { close(release) })
	if got := <-first; len(got.Answer) != 1 {
		t.Errorf("first query: got %v; want the upstream's answer", got)
	}
	w = dnstest.NewWriter("udp")
	h.ServeDNS(w, question("test.example.", dns.TypeA))
	if len(w.Msg.Answer) != 1 {
		t.Errorf("after release: got %v; want answered", w.Msg)
	}
}
