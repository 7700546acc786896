// Package dnstest holds DNS test servers shared by the unit and integration tests.
package dnstest

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Strict is a nameserver that, like BIND and Unbound, answers FORMERR to a message
// whose header counts do not match its sections. It answers every A query with BigAnswers
// records (over 4 KB), truncated with TC over UDP to the client's EDNS size (512 without
// one), and records for each query its transport and whether it carried an OPT.
type Strict struct {
	Addr netip.AddrPort // UDP and TCP

	mu   sync.Mutex // guards got
	got  []StrictQuery
	errs []string // header/section mismatches seen
}

// StrictQuery is one query Strict accepted.
type StrictQuery struct {
	Proto string // udp or tcp
	EDNS  bool   // the query carried an OPT record
}

// BigAnswers is how many A records Strict answers: 300 make a reply of about 4.9 KB.
const BigAnswers = 300

// StartStrict serves on addr ("127.0.0.1:0" for a free port), UDP and TCP on the same
// port, until the test ends.
func StartStrict(t testing.TB, addr string) *Strict {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	u := &Strict{Addr: netip.MustParseAddrPort(pc.LocalAddr().String())}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply := u.reply(buf[:n], "udp"); reply != nil {
				pc.WriteTo(reply, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var lb [2]byte
					if _, err := io.ReadFull(c, lb[:]); err != nil {
						return
					}
					pkt := make([]byte, binary.BigEndian.Uint16(lb[:]))
					if _, err := io.ReadFull(c, pkt); err != nil {
						return
					}
					reply := u.reply(pkt, "tcp")
					out := binary.BigEndian.AppendUint16(nil, uint16(len(reply)))
					if _, err := c.Write(append(out, reply...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return u
}

// reply checks pkt strictly and answers it.
func (u *Strict) reply(pkt []byte, proto string) []byte {
	if len(pkt) < 12 {
		return nil
	}
	m := new(dns.Msg)
	err := m.Unpack(pkt)
	if err == nil {
		counts := [4]int{len(m.Question), len(m.Answer), len(m.Ns), len(m.Extra)}
		for i, c := range counts {
			if h := int(binary.BigEndian.Uint16(pkt[4+2*i:])); h != c {
				err = errors.New("header counts do not match the sections")
			}
		}
	}
	if err != nil {
		u.mu.Lock()
		u.errs = append(u.errs, proto+": "+err.Error())
		u.mu.Unlock()
		// BIND's FORMERR: the header only, ID and opcode copied.
		out := append([]byte(nil), pkt[:12]...)
		out[2], out[3] = 0x80|pkt[2]&0x79, dns.RcodeFormatError
		clear(out[4:])
		return out
	}
	u.mu.Lock()
	u.got = append(u.got, StrictQuery{proto, m.IsEdns0() != nil})
	u.mu.Unlock()
	r := new(dns.Msg)
	r.SetReply(m)
	r.RecursionAvailable = true
	q := m.Question[0]
	for i := range BigAnswers {
		r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(10, 1, byte(i>>8), byte(i))})
	}
	if opt := m.IsEdns0(); opt != nil {
		r.SetEdns0(4096, opt.Do())
	}
	if proto == "udp" {
		size := dns.MinMsgSize
		if opt := m.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		r.Truncate(size)
	}
	out, err := r.Pack()
	if err != nil {
		return nil
	}
	return out
}

// Seen returns the queries accepted and the mismatches rejected, in order.
func (u *Strict) Seen() ([]StrictQuery, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]StrictQuery(nil), u.got...), append([]string(nil), u.errs...)
}
