package dnsd

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
	"berth/store"
)

// TestFastMatchesGeneral: for every query the UDP fast path answers, the reply is the one
// the general path (miekg's checks, unpack, ServeDNS) gives, message for message; queries
// it must leave alone it leaves alone.
func TestFastMatchesGeneral(t *testing.T) {
	st := newFixture(t, "")
	addSandboxes(t, st, 60, "many")
	long := strings.Repeat("x", 70)
	err := st.Update(func(tx *store.Tx) error {
		id := fmt.Sprintf("%064x", 0x9999)
		if err := tx.PutSandbox(&store.Sandbox{ID: id, Name: long, Mode: store.ModeBridge, State: store.StateReady, Seq: 99}); err != nil {
			return err
		}
		return tx.PutEndpoint(&store.Endpoint{ID: fmt.Sprintf("%064x", 0x8888), NetworkID: n1ID, SandboxID: id,
			IPv4: netip.MustParseAddr("172.30.0.99"), DNSNames: []string{long}})
	})
	if err != nil {
		t.Fatal(err)
	}
	u := newUpstream(t, "127.0.0.1")
	s := newTestServer(t, st, Config{}, u)
	h := s.newHandler(context.Background(), clientID, "")

	edns := func(m *dns.Msg, size uint16, do bool) *dns.Msg { m.SetEdns0(size, do); return m }
	set := func(m *dns.Msg, f func(m *dns.Msg)) *dns.Msg { f(m); return m }
	tests := []struct {
		name string
		r    *dns.Msg
		fast bool // answered by the fast path
	}{
		{"A", question("web.", dns.TypeA), true},
		{"A case kept", question("wEb.", dns.TypeA), true},
		{"alias", question("WWW.", dns.TypeA), true},
		{"name.network", question("web.n1.", dns.TypeA), true},
		{"short id", question("abcdef012345.", dns.TypeA), true},
		{"AAAA no data", question("web.", dns.TypeAAAA), true},
		{"MX no data", question("web.", dns.TypeMX), true},
		{"PTR", question("3.0.30.172.in-addr.arpa.", dns.TypePTR), true},
		{"PTR label too long", question("99.0.30.172.in-addr.arpa.", dns.TypePTR), false},
		{"shared alias truncated", question("many.", dns.TypeA), true},
		{"shared alias edns 4096", edns(question("many.", dns.TypeA), 4096, false), true},
		{"shared alias edns 700", edns(question("many.", dns.TypeA), 700, false), true},
		{"edns below 512", edns(question("many.", dns.TypeA), 100, false), true},
		{"edns DO", edns(question("web.", dns.TypeA), 1400, true), true},
		{"edns version 1", set(edns(question("web.", dns.TypeA), 1400, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }), false},
		{"edns option", set(edns(question("web.", dns.TypeA), 1400, false), func(m *dns.Msg) {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}), true},
		{"RD clear, CD set", set(question("web.", dns.TypeA), func(m *dns.Msg) { m.RecursionDesired = false; m.CheckingDisabled = true }), true},
		{"AD and Z ignored", set(question("web.", dns.TypeA), func(m *dns.Msg) { m.AuthenticatedData = true; m.Zero = true }), true},
		{"forwarded", question("test.example.", dns.TypeA), false},
		{"TXT forwarded", question("web.", dns.TypeTXT), false},
		{"class CH", set(question("web.", dns.TypeA), func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false},
		{"escaped name", question(`w\.eb.`, dns.TypeA), false},
		{"root", question(".", dns.TypeNS), false},
		{"two questions", set(question("web.", dns.TypeA), func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false},
		{"notify", set(question("web.", dns.TypeSOA), func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), false},
		{"update", set(question("web.", dns.TypeSOA), func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), false},
		{"response", set(question("web.", dns.TypeA), func(m *dns.Msg) { m.Response = true }), false},
	}
	var sc scratch
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkt, err := tc.r.Pack()
			if err != nil {
				t.Fatal(err)
			}
			general := dnstest.NewWriter("udp")
			if req := accept(pkt, general); req != nil {
				h.ServeDNS(general, req)
			}
			reply, ok := h.fast(pkt, &sc)
			if ok != tc.fast {
				t.Fatalf("fast path taken: got %v; want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			if general.Msg == nil {
				t.Fatal("general path: no reply")
			}
			got := new(dns.Msg)
			if err := got.Unpack(reply); err != nil {
				t.Fatalf("fast reply does not unpack: %v", err)
			}
			if g, w := canonical(got), canonical(general.Msg); g != w {
				t.Errorf("fast reply:\n%s\ngeneral reply:\n%s", g, w)
			}
			if len(reply) > max(bufsize(tc.r, "udp"), 512) {
				t.Errorf("fast reply is %d bytes; client takes %d", len(reply), bufsize(tc.r, "udp"))
			}
		})
	}
	// Truncated garbage and trailing bytes stay off the fast path.
	pkt, _ := question("web.", dns.TypeA).Pack()
	for i := minQuery; i < len(pkt); i++ {
		if _, ok := h.fast(pkt[:i], &sc); ok {
			t.Errorf("fast path answered a query cut to %d bytes", i)
		}
	}
	if _, ok := h.fast(append(pkt, 0), &sc); ok {
		t.Error("fast path answered a query with a trailing byte")
	}
}

// canonical is a message as text with its answers sorted (they are shuffled). For a
// truncated message only their number counts: which ones fit is random.
func canonical(m *dns.Msg) string {
	var answers []string
	for _, rr := range m.Answer {
		answers = append(answers, rr.String())
	}
	if m.Truncated {
		answers = nil
	}
	slices.Sort(answers)
	m = m.Copy()
	m.Answer = nil
	return fmt.Sprintf("%s\nANSWERS (%d):\n%s", m, len(answers), strings.Join(answers, "\n"))
}

// TestFastNoAllocs: a local answer on the fast path allocates nothing.
func TestFastNoAllocs(t *testing.T) {
	s := newTestServer(t, newFixture(t, ""), Config{})
	h := s.newHandler(context.Background(), clientID, "")
	var sc scratch
	for _, r := range []*dns.Msg{question("web.", dns.TypeA), question("web.", dns.TypeAAAA), question("Www.N1.", dns.TypeA)} {
		pkt, _ := r.Pack()
		if got := testing.AllocsPerRun(100, func() { h.fast(pkt, &sc) }); got != 0 {
			t.Errorf("%v: %v allocations; want 0", r.Question[0], got)
		}
	}
}

// BenchmarkFastA is the UDP hot path without the socket: parse, look up, build the reply.
func BenchmarkFastA(b *testing.B) {
	st := newFixture(b, "")
	addSandboxes(b, st, 5, "pool")
	s := newTestServer(b, st, Config{})
	h := s.newHandler(context.Background(), clientID, "")
	for _, bc := range []struct {
		name string
		r    *dns.Msg
	}{
		{"A", question("web.", dns.TypeA)},
		{"A_shared_alias_5", question("pool.", dns.TypeA)},
		{"AAAA_nodata", question("web.", dns.TypeAAAA)},
		{"PTR", question("3.0.30.172.in-addr.arpa.", dns.TypePTR)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkt, _ := bc.r.Pack()
			var sc scratch
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := h.fast(pkt, &sc); !ok {
					b.Fatal("not answered on the fast path")
				}
			}
		})
	}
}
