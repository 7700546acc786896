package dnsd

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// spoofAnswer is what a forged reply says; the real upstream says 10.11.12.13.
const spoofAnswer = "6.6.6.6"

// spoofed returns daft's answer to r with the address replaced by spoofAnswer.
func spoofed(r *dns.Msg) *dns.Msg {
	m := daft(r)
	m.Rcode = dns.RcodeSuccess
	m.Ns = nil
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 600}, A: net.ParseIP(spoofAnswer)}}
	return m
}

func pack(t testing.TB, m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		t.Error(err)
	}
	return b
}

// spoofUDPUpstream answers each query with forgeries first: the right ID from another port
// of its address and from another address, a wrong ID from its own socket, and SERVFAIL
// with a wrong ID; then, after a pause, the real answer. It returns its address.
func spoofUDPUpstream(t *testing.T) netip.AddrPort {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var others []*net.UDPConn
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)} {
		o, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		others = append(others, o)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:n]) != nil {
				continue
			}
			for _, o := range others {
				o.WriteToUDP(pack(t, spoofed(r)), from)
			}
			wrongID := spoofed(r)
			wrongID.Id = r.Id + 1
			pc.WriteToUDP(pack(t, wrongID), from)
			fail := new(dns.Msg)
			fail.SetRcode(r, dns.RcodeServerFailure)
			fail.Id = r.Id + 2
			pc.WriteToUDP(pack(t, fail), from)
			time.Sleep(50 * time.Millisecond)
			pc.WriteToUDP(pack(t, daft(r)), from)
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// spoofTCPUpstream answers each query on its connection with forgeries first (a wrong ID,
// the right ID for another question, a wrong-ID SERVFAIL), then, after a pause, the real
// answer, unless silent, when it sends only the forgeries.
func spoofTCPUpstream(t *testing.T, silent bool) netip.AddrPort {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	serve := func(c net.Conn) {
		defer c.Close()
		co := &dns.Conn{Conn: c}
		for {
			r, err := co.ReadMsg()
			if err != nil {
				return
			}
			wrongID := spoofed(r)
			wrongID.Id = r.Id + 1
			wrongQ := spoofed(r)
			wrongQ.Question[0].Name = "other.example."
			wrongQ.Answer[0].Header().Name = "other.example."
			fail := new(dns.Msg)
			fail.SetRcode(r, dns.RcodeServerFailure)
			fail.Id = r.Id + 2
			for _, m := range []*dns.Msg{wrongID, wrongQ, fail} {
				if co.WriteMsg(m) != nil {
					return
				}
			}
			if silent {
				io.Copy(io.Discard, c)
				return
			}
			time.Sleep(50 * time.Millisecond)
			if co.WriteMsg(daft(r)) != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// TestSpoofedRepliesIgnored: forged replies (wrong ID, wrong question, wrong source port or
// address) are skipped and the forward keeps waiting for the real one, over UDP (general
// path and the UDP reader's relay path) and TCP, instead of failing at the first forgery.
func TestSpoofedRepliesIgnored(t *testing.T) {
	check := func(t *testing.T, got *dns.Msg) {
		t.Helper()
		if got.Rcode != dns.RcodeSuccess || len(got.Answer) != 1 {
			t.Fatalf("got rcode %s, answer %v; want NOERROR 10.11.12.13", dns.RcodeToString[got.Rcode], got.Answer)
		}
		if a := got.Answer[0].(*dns.A).A.String(); a != "10.11.12.13" {
			t.Errorf("got %s; want the real upstream's 10.11.12.13", a)
		}
	}
	// Forgeries from another address or port never reach the relay (connected sockets);
	// the others are counted.
	mismatched := func(t *testing.T, s *Server, up netip.AddrPort, want float64) {
		t.Helper()
		if v := settled(t, s, `berth_dns_upstream_mismatched_total{upstream="`+up.String()+`"}`, want); v != want {
			t.Errorf("mismatched replies counted: %v; want %v", v, want)
		}
	}
	cfg := Config{ForwardTimeout: 2 * time.Second, ForwardDeadline: 3 * time.Second}
	t.Run("udp", func(t *testing.T) {
		up := spoofUDPUpstream(t)
		s := newTestServer(t, newFixture(t, ""), cfg, &upstream{addr: up})
		check(t, query(t, s, "udp", question("test.example.", dns.TypeA)))
		mismatched(t, s, up, 2)
	})
	t.Run("udp reader", func(t *testing.T) {
		up := spoofUDPUpstream(t)
		s := newTestServer(t, newFixture(t, ""), cfg, &upstream{addr: up})
		srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		us := newUDPServer(s.newHandler(context.Background(), clientID, ""), srv)
		defer us.stop(time.Second)
		c, err := dns.Dial("udp", srv.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := question("test.example.", dns.TypeA)
		if err := c.WriteMsg(r); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if got.Id != r.Id {
			t.Errorf("reply id %d; want the client's %d", got.Id, r.Id)
		}
		check(t, got)
		mismatched(t, s, up, 2)
	})
	t.Run("tcp", func(t *testing.T) {
		up := spoofTCPUpstream(t, false)
		s := newTestServer(t, newFixture(t, ""), cfg, &upstream{addr: up})
		r := question("test.example.", dns.TypeA)
		got := query(t, s, "tcp", r)
		if got.Id != r.Id {
			t.Errorf("reply id %d; want the client's %d", got.Id, r.Id)
		}
		check(t, got)
		mismatched(t, s, up, 3)
	})
	// Only forgeries: the attempt ends at its timeout, not at the first forgery, and the
	// next upstream is asked.
	t.Run("tcp forgeries only", func(t *testing.T) {
		cfg := Config{ForwardTimeout: 300 * time.Millisecond, ForwardDeadline: 2 * time.Second}
		real := newUpstream(t, "127.0.0.1")
		s := newTestServer(t, newFixture(t, ""), cfg, &upstream{addr: spoofTCPUpstream(t, true)}, real)
		start := time.Now()
		check(t, query(t, s, "tcp", question("test.example.", dns.TypeA)))
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("answered after %v; want the first upstream's timeout (300ms) first", d)
		}
		if q := real.seen(); len(q) != 1 || q[0].proto != "tcp" {
			t.Errorf("second upstream saw %v; want the query once over tcp", q)
		}
	})
}

// TestExchangeTCPSkips: exchangeTCP skips non-matching messages and returns the matching
// one, and a read error ends it.
func TestExchangeTCPSkips(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	query := pack(t, question("x.example.", dns.TypeA))
	qend, _ := questionEnd(query)
	go func() {
		defer b.Close()
		var l [2]byte
		if _, err := io.ReadFull(b, l[:]); err != nil {
			return
		}
		sent := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(b, sent); err != nil {
			return
		}
		r := new(dns.Msg)
		if r.Unpack(sent) != nil {
			return
		}
		co := &dns.Conn{Conn: b}
		bad := daft(r)
		bad.Id++
		co.WriteMsg(bad)
		co.WriteMsg(daft(r))
	}()
	a.SetDeadline(time.Now().Add(2 * time.Second))
	skipped := 0
	raw, err := exchangeTCP(a, query, qend, func() { skipped++ })
	if err != nil {
		t.Fatalf("exchangeTCP: %v; want the second, matching reply", err)
	}
	if skipped != 1 {
		t.Errorf("skipped %d messages; want 1", skipped)
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil || m.Rcode != dns.RcodeNameError {
		t.Errorf("got %v (%v); want the upstream's NXDOMAIN", m, err)
	}
}
