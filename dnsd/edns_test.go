package dnsd

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
	"berth/resolver"
	"berth/store"
)

// TestForwardEDNSStrict: a query with an OPT record is forwarded with it over both
// transports, so a strict upstream answers an over-4 KB reply: UDP gets TC, the client's
// TCP retry (and a query that starts on TCP) the whole answer.
func TestForwardEDNSStrict(t *testing.T) {
	u := dnstest.StartStrict(t, "127.0.0.1:0")
	s := New(Config{Store: newFixture(t, "")})
	s.upstreams = upstreamsAt(u.Addr)
	t.Cleanup(s.Close)

	r := question("big.example.", dns.TypeA)
	r.SetEdns0(1232, false)
	got := query(t, s, "udp", r)
	if !got.Truncated || got.Rcode != dns.RcodeSuccess {
		t.Fatalf("udp: rcode %s TC %v; want NOERROR with TC (the upstream's truncated answer)", rcodeName(got.Rcode), got.Truncated)
	}
	for _, step := range []string{"tcp retry after TC", "direct tcp"} {
		r := question("big.example.", dns.TypeA)
		r.SetEdns0(1232, step == "direct tcp")
		got := query(t, s, "tcp", r)
		if got.Rcode != dns.RcodeSuccess || len(got.Answer) != dnstest.BigAnswers || got.Truncated {
			t.Errorf("%s: rcode %s, %d answers, TC %v; want NOERROR with all %d", step, rcodeName(got.Rcode), len(got.Answer), got.Truncated, dnstest.BigAnswers)
		}
		if opt := got.IsEdns0(); opt == nil || opt.Do() != (step == "direct tcp") {
			t.Errorf("%s: reply OPT %v; want the upstream's OPT, DO as asked", step, opt)
		}
	}
	seen, errs := u.Seen()
	if len(errs) != 0 {
		t.Errorf("strict upstream rejected: %v", errs)
	}
	var protos []string
	for _, q := range seen {
		if !q.EDNS {
			t.Errorf("a %s query reached the upstream without its OPT", q.Proto)
		}
		protos = append(protos, q.Proto)
	}
	if strings.Join(protos, " ") != "udp tcp tcp" {
		t.Errorf("upstream saw %v; want udp tcp tcp", protos)
	}

	// Without EDNS nothing is added: the header says no additional records, and there are none.
	r = question("big.example.", dns.TypeA)
	if got := query(t, s, "tcp", r); got.Rcode != dns.RcodeSuccess || got.IsEdns0() != nil {
		t.Errorf("tcp without edns: rcode %s OPT %v; want NOERROR without OPT", rcodeName(got.Rcode), got.IsEdns0())
	}
}

// TestFailureFlags: SERVFAIL and BADVERS say recursion is available, and BADVERS is logged
// under its name, not as BADSIG (the same number in dns.RcodeToString).
func TestFailureFlags(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newTestServer(t, newFixture(t, ""), Config{Log: log}) // no upstreams: SERVFAIL

	for _, proto := range []string{"udp", "tcp"} {
		got := query(t, s, proto, question("nosuch.example.", dns.TypeA))
		if got.Rcode != dns.RcodeServerFailure || !got.RecursionAvailable {
			t.Errorf("%s: rcode %s RA %v; want SERVFAIL with RA", proto, rcodeName(got.Rcode), got.RecursionAvailable)
		}
		r := question("web.", dns.TypeA)
		r.SetEdns0(1232, false)
		r.IsEdns0().SetVersion(1)
		got = query(t, s, proto, r)
		if got.Rcode != dns.RcodeBadVers || !got.RecursionAvailable {
			t.Errorf("%s: rcode %s RA %v; want BADVERS with RA", proto, rcodeName(got.Rcode), got.RecursionAvailable)
		}
	}
	if out := logs.String(); !strings.Contains(out, "rcode=BADVERS") || strings.Contains(out, "BADSIG") {
		t.Errorf("log does not name BADVERS:\n%s", out)
	}
}

// upstreamsAt makes every sandbox forward to addrs, in the daemon's netns.
func upstreamsAt(addrs ...netip.AddrPort) func(*store.Snapshot, string) []resolver.Upstream {
	return func(*store.Snapshot, string) []resolver.Upstream {
		var list []resolver.Upstream
		for _, a := range addrs {
			list = append(list, resolver.Upstream{Addr: a, HostNS: true})
		}
		return list
	}
}
