package integration

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/nsutil"
)

// exchangeRaw sends one raw UDP packet to 127.0.0.11:53 from inside nsPath and returns the
// reply, or nil if none came within 300 ms.
func exchangeRaw(t *testing.T, nsPath string, pkt []byte) []byte {
	t.Helper()
	var reply []byte
	nsutil.Do(nsPath, func() error {
		c, err := net.Dial("udp", "127.0.0.11:53")
		if err != nil {
			return err
		}
		defer c.Close()
		c.Write(pkt)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err == nil {
			reply = buf[:n]
		}
		return nil
	})
	return reply
}

func header(id uint16, flags uint16, qd, an, ns, ar uint16) []byte {
	h := make([]byte, 12)
	for i, v := range []uint16{id, flags, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(h[2*i:], v)
	}
	return h
}

// TestDNSHostileInput: malformed packets (RFC 9267 compression attacks, bad counts, QR=1,
// unknown opcodes, EDNS versions) get FORMERR/NOTIMP/BADVERS or no reply, are never
// forwarded, and never stop the server.
func TestDNSHostileInput(t *testing.T) {
	_, u := dnsSetup(t)
	ns := "/run/netns/web"
	q := func(name string) []byte { // a well-formed A question
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, _ := m.Pack()
		return b[12:]
	}
	cases := []struct {
		name  string
		pkt   []byte
		rcode int // -1: no reply
	}{
		{"pointer loop to itself", append(header(1, 0x0100, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1), dns.RcodeFormatError},
		{"pointer beyond the packet", append(header(2, 0x0100, 1, 0, 0, 0), 0xc0, 0xff, 0, 1, 0, 1), dns.RcodeFormatError},
		{"pointer chain loop", append(header(3, 0x0100, 1, 0, 0, 0), 1, 'a', 0xc0, 14, 0, 1, 0, 1), dns.RcodeFormatError},
		{"label past the end", append(header(4, 0x0100, 1, 0, 0, 0), 40, 'a', 'b'), dns.RcodeFormatError},
		{"two questions", append(append(header(5, 0x0100, 2, 0, 0, 0), q("web.")...), q("db.")...), dns.RcodeFormatError},
		{"no question", header(6, 0x0100, 0, 0, 0, 0), dns.RcodeFormatError},
		{"response bit set", append(header(7, 0x8100, 1, 0, 0, 0), q("web.")...), -1},
		{"short packet", []byte{0, 8, 1, 0, 0}, -1},
		{"opcode UPDATE", append(header(9, 0x2800, 1, 0, 0, 0), q("web.")...), dns.RcodeNotImplemented},
		{"opcode STATUS", append(header(10, 0x1100, 1, 0, 0, 0), q("web.")...), dns.RcodeNotImplemented},
	}
	for _, tc := range cases {
		reply := exchangeRaw(t, ns, tc.pkt)
		switch {
		case tc.rcode == -1 && reply != nil:
			t.Errorf("%s: got a reply, want none", tc.name)
		case tc.rcode >= 0 && len(reply) < 12:
			t.Errorf("%s: no reply, want rcode %s", tc.name, dns.RcodeToString[tc.rcode])
		case tc.rcode >= 0 && int(reply[3]&0x0f) != tc.rcode:
			t.Errorf("%s: rcode %s, want %s", tc.name, dns.RcodeToString[int(reply[3]&0x0f)], dns.RcodeToString[tc.rcode])
		}
	}
	// EDNS version 1 → BADVERS (extended rcode 16 = upper bits 1 in the OPT TTL).
	m := new(dns.Msg)
	m.SetQuestion("web.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	pkt, _ := m.Pack()
	if reply := exchangeRaw(t, ns, pkt); reply == nil {
		t.Errorf("EDNS version 1: no reply, want BADVERS")
	} else if r := new(dns.Msg); r.Unpack(reply) != nil || r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: rcode %d, want BADVERS", r.Rcode)
	}
	if n := u.count(); n != 0 {
		t.Errorf("malformed queries reached the upstream: %v", u.queries)
	}
	if r := dig(t, "web", "db"); len(r.values("A")) != 1 {
		t.Errorf("after hostile input the server does not answer: %s", r.raw)
	}
}

// TestDNSTCPPipelining: several queries written back to back on one TCP connection are all
// answered (RFC 7766 §6.2.1.1), matched by ID.
func TestDNSTCPPipelining(t *testing.T) {
	dnsSetup(t)
	names := []string{"web.", "db.", "database.", "test.example.", "nosuch.example."}
	err := nsutil.Do("/run/netns/web", func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.11:53", time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var out []byte
		for i, n := range names {
			m := new(dns.Msg)
			m.SetQuestion(n, dns.TypeA)
			m.Id = uint16(100 + i)
			b, _ := m.Pack()
			out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
			out = append(out, b...)
		}
		if _, err := c.Write(out); err != nil { // all at once, before reading anything
			return err
		}
		seen := map[uint16]bool{}
		for range names {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return err
			}
			b := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, b); err != nil {
				return err
			}
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil {
				return err
			}
			seen[r.Id] = true
		}
		for i := range names {
			if !seen[uint16(100+i)] {
				t.Errorf("pipelined query %d (%s) not answered", 100+i, names[i])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pipelined TCP: %v", err)
	}
}
