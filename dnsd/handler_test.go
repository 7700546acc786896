package dnsd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
	"berth/resolver"
	"berth/store"
)

// TestServeDNS drives the handler as miekg's server would, with a fake writer and no
// socket of its own: a name the store answers, and one forwarded to an in-process upstream
// over the client's transport.
func TestServeDNS(t *testing.T) {
	u := newUpstream(t, "127.0.0.1")
	s := newTestServer(t, newFixture(t, ""), Config{}, u)
	h := s.newHandler(context.Background(), clientID, "")
	for _, tc := range []struct {
		name, proto, qname string
		want               string // the A record
		forwarded          bool
	}{
		{"local", "udp", "web.", "172.30.0.3", false},
		{"forwarded over udp", "udp", "test.example.", "10.11.12.13", true},
		{"forwarded over tcp", "tcp", "test.example.", "10.11.12.13", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(u.seen())
			w := dnstest.NewWriter(tc.proto)
			r := question(tc.qname, dns.TypeA)
			h.ServeDNS(w, r)
			if w.N != 1 || w.Msg == nil {
				t.Fatalf("wrote %d messages (last %x); want one reply", w.N, w.Raw)
			}
			if w.Msg.Id != r.Id || w.Msg.Rcode != dns.RcodeSuccess || len(w.Msg.Answer) != 1 {
				t.Fatalf("reply: %v; want id %d, one answer", w.Msg, r.Id)
			}
			if a, ok := w.Msg.Answer[0].(*dns.A); !ok || a.A.String() != tc.want {
				t.Errorf("answer: got %v; want A %s", w.Msg.Answer[0], tc.want)
			}
			seen := u.seen()[before:]
			switch {
			case !tc.forwarded && len(seen) != 0:
				t.Errorf("upstream saw %v; want nothing for a local name", seen)
			case tc.forwarded && (len(seen) != 1 || seen[0].proto != tc.proto):
				t.Errorf("upstream saw %v; want the query once over %s", seen, tc.proto)
			}
		})
	}
}

// TestLocal covers names the resolver owns: answered here, never forwarded.
func TestLocal(t *testing.T) {
	st := newFixture(t, "")
	u := newUpstream(t, "127.0.0.1")
	s := newTestServer(t, st, Config{}, u)

	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  []string // answer RR strings
	}{
		{"name, case kept", "Web.", dns.TypeA, []string{"Web.\t600\tIN\tA\t172.30.0.3"}},
		{"mixed case", "wEB.", dns.TypeA, []string{"wEB.\t600\tIN\tA\t172.30.0.3"}},
		{"alias", "www.", dns.TypeA, []string{"www.\t600\tIN\tA\t172.30.0.3"}},
		{"short id", "abcdef012345.", dns.TypeA, []string{"abcdef012345.\t600\tIN\tA\t172.30.0.3"}},
		{"hostname", "webhost.", dns.TypeA, []string{"webhost.\t600\tIN\tA\t172.30.0.3"}},
		{"name.network", "web.n1.", dns.TypeA, []string{"web.n1.\t600\tIN\tA\t172.30.0.3"}},
		{"own name", "client.", dns.TypeA, []string{"client.\t600\tIN\tA\t172.30.0.2"}},
		{"AAAA of IPv4-only is no data", "web.", dns.TypeAAAA, nil},
		{"MX of local name is no data", "web.", dns.TypeMX, nil},
		{"PTR", "3.0.30.172.in-addr.arpa.", dns.TypePTR, []string{"3.0.30.172.in-addr.arpa.\t600\tIN\tPTR\tweb.n1."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := question(tc.qname, tc.qtype)
			got := query(t, s, "udp", r)
			if got.Rcode != dns.RcodeSuccess || !got.RecursionAvailable || got.Authoritative || got.Id != r.Id || !got.Response {
				t.Errorf("header: got rcode %s RA %v AA %v id %d QR %v; want NOERROR RA true AA false id %d QR true",
					dns.RcodeToString[got.Rcode], got.RecursionAvailable, got.Authoritative, got.Id, got.Response, r.Id)
			}
			var answers []string
			for _, rr := range got.Answer {
				answers = append(answers, rr.String())
			}
			if fmt.Sprint(answers) != fmt.Sprint(tc.want) {
				t.Errorf("answer: got %q; want %q", answers, tc.want)
			}
			if len(got.Ns) != 0 || len(got.Extra) != 0 {
				t.Errorf("got authority %v extra %v; want none", got.Ns, got.Extra)
			}
		})
	}
	if q := u.seen(); len(q) != 0 {
		t.Errorf("upstream got %v; want nothing forwarded", q)
	}
}

// addSandboxes adds n sandboxes on n1 sharing alias, from 172.30.1.1 on.
func addSandboxes(t testing.TB, st *store.Store, n int, alias string) {
	t.Helper()
	err := st.Update(func(tx *store.Tx) error {
		for i := range n {
			id := fmt.Sprintf("%064x", 0x1000+i)
			name := fmt.Sprintf("many%d", i)
			if err := tx.PutSandbox(&store.Sandbox{ID: id, Name: name, Mode: store.ModeBridge, State: store.StateReady, Seq: uint64(10 + i)}); err != nil {
				return err
			}
			ip := netip.AddrFrom4([4]byte{172, 30, 1, byte(i + 1)})
			if err := tx.PutEndpoint(&store.Endpoint{ID: fmt.Sprintf("%064x", 0x2000+i), NetworkID: n1ID, SandboxID: id,
				IPv4: ip, Aliases: []string{alias}, DNSNames: []string{name, alias, store.ShortID(id)}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTruncate: UDP without EDNS gets 512 bytes and TC; EDNS gets its size; TCP gets all.
func TestTruncate(t *testing.T) {
	st := newFixture(t, "")
	addSandboxes(t, st, 60, "many")
	s := newTestServer(t, st, Config{})

	plain := question("many.", dns.TypeA)
	edns := question("many.", dns.TypeA)
	edns.SetEdns0(4096, false)
	tests := []struct {
		name    string
		proto   string
		r       *dns.Msg
		wantTC  bool
		wantAll bool
	}{
		{"udp no edns", "udp", plain, true, false},
		{"udp edns 4096", "udp", edns, false, true},
		{"tcp", "tcp", plain, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := dnstest.NewWriter(tc.proto)
			s.newHandler(context.Background(), clientID, "").ServeDNS(w, tc.r)
			if w.Msg.Truncated != tc.wantTC {
				t.Errorf("TC: got %v; want %v", w.Msg.Truncated, tc.wantTC)
			}
			if tc.proto == "udp" && tc.r.IsEdns0() == nil && len(w.Raw) > 512 {
				t.Errorf("size: got %d bytes; want at most 512", len(w.Raw))
			}
			if all := len(w.Msg.Answer) == 60; all != tc.wantAll {
				t.Errorf("answers: got %d; want all 60: %v", len(w.Msg.Answer), tc.wantAll)
			}
		})
	}
}

// TestShuffle: several sandboxes with one alias come back in varying order.
func TestShuffle(t *testing.T) {
	st := newFixture(t, "")
	addSandboxes(t, st, 5, "pool")
	s := newTestServer(t, st, Config{})
	orders := map[string]bool{}
	for range 50 {
		got := query(t, s, "udp", question("pool.", dns.TypeA))
		if len(got.Answer) != 5 {
			t.Fatalf("got %d answers; want 5", len(got.Answer))
		}
		orders[fmt.Sprint(got.Answer)] = true
	}
	if len(orders) < 2 {
		t.Errorf("got %d distinct orders in 50 answers; want shuffled", len(orders))
	}
}

// TestEDNS: OPT echoed on local answers (Docker omits it), DO copied; version > 0 is BADVERS.
func TestEDNS(t *testing.T) {
	s := newTestServer(t, newFixture(t, ""), Config{})

	r := question("web.", dns.TypeA)
	r.SetEdns0(1400, true)
	got := query(t, s, "udp", r)
	opt := got.IsEdns0()
	if opt == nil || !opt.Do() || opt.Version() != 0 || len(got.Answer) != 1 {
		t.Errorf("got %v; want 1 answer and an OPT with DO", got)
	}

	r = question("web.", dns.TypeA)
	r.SetEdns0(1400, false)
	r.IsEdns0().SetVersion(1)
	got = query(t, s, "udp", r)
	if got.Rcode != dns.RcodeBadVers || got.IsEdns0() == nil {
		t.Errorf("got rcode %s, OPT %v; want BADVERS with OPT", dns.RcodeToString[got.Rcode], got.IsEdns0())
	}
}

// TestErrors: failures inside the handler become SERVFAIL, other opcodes NOTIMP.
func TestErrors(t *testing.T) {
	st := newFixture(t, "")
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
	s := newTestServer(t, st, Config{})

	t.Run("panic", func(t *testing.T) {
		s.upstreams = func(*store.Snapshot, string) []resolver.Upstream { panic("boom") }
		got := query(t, s, "udp", question("nosuch.example.", dns.TypeA))
		if got.Rcode != dns.RcodeServerFailure {
			t.Errorf("got %s; want SERVFAIL", dns.RcodeToString[got.Rcode])
		}
		if n := value(t, s, "berth_dns_handler_panics_total"); n != 1 {
			t.Errorf("berth_dns_handler_panics_total = %v, want 1", n)
		}
		// The server still answers.
		if got := query(t, s, "udp", question("web.", dns.TypeA)); len(got.Answer) != 1 {
			t.Errorf("after panic: got %v; want web's address", got)
		}
	})
	t.Run("reply does not pack", func(t *testing.T) {
		got := query(t, s, "udp", question("99.0.30.172.in-addr.arpa.", dns.TypePTR))
		if got.Rcode != dns.RcodeServerFailure {
			t.Errorf("PTR with a %d-byte label: got %s; want SERVFAIL", len(long), dns.RcodeToString[got.Rcode])
		}
	})
	t.Run("notify", func(t *testing.T) {
		r := question("web.", dns.TypeSOA)
		r.Opcode = dns.OpcodeNotify
		if got := query(t, s, "udp", r); got.Rcode != dns.RcodeNotImplemented {
			t.Errorf("got %s; want NOTIMP", dns.RcodeToString[got.Rcode])
		}
	})
}

// TestExplain: the answer and how it was reached, without a socket for local names.
func TestExplain(t *testing.T) {
	st := newFixture(t, "")
	u := newUpstream(t, "127.0.0.1")
	s := newTestServer(t, st, Config{}, u)
	ctx := context.Background()

	m, ex, err := s.Explain(ctx, clientID, "WWW", dns.TypeA)
	how := ex.How
	if err != nil || len(m.Answer) != 1 || !strings.Contains(how, "network n1") || !strings.Contains(how, "alias") {
		t.Errorf("local: got %v, %q, %v; want one A and how naming network n1 and alias", m, how, err)
	}
	m, ex, err = s.Explain(ctx, clientID, "nosuch.example", dns.TypeA)
	how = ex.How
	if err != nil || m.Rcode != dns.RcodeNameError || !strings.Contains(how, u.addr.String()) {
		t.Errorf("forwarded: got %v, %q, %v; want NXDOMAIN from %s", m, how, err, u.addr)
	}
	if _, _, err := s.Explain(ctx, "nope", "web", dns.TypeA); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown sandbox: got %v; want store.ErrNotFound", err)
	}

	// The real upstream list: no host resolv.conf and no --dns means nowhere to forward.
	s2 := New(Config{Store: st})
	m, ex, err = s2.Explain(ctx, clientID, "nosuch.example", dns.TypeA)
	how = ex.How
	if err != nil || m.Rcode != dns.RcodeServerFailure || !strings.Contains(how, "no upstream") {
		t.Errorf("no upstreams: got %v, %q, %v; want SERVFAIL, no upstream", m, how, err)
	}
}

// BenchmarkLocalA is the hot path: a local A answer through the handler.
func BenchmarkLocalA(b *testing.B) {
	s := newTestServer(b, newFixture(b, ""), Config{})
	h := s.newHandler(context.Background(), clientID, "")
	r := question("web.", dns.TypeA)
	w := &discard{}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, r)
	}
}

// discard is a ResponseWriter that drops replies (for benchmarks).
type discard struct{ dnstest.Writer }

func (w *discard) Write(b []byte) (int, error) { return len(b), nil }
