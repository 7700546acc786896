package integration

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
)

// upstream is a test nameserver (the "U" of docker-dns.md §5): it answers
// `A test.example` with 10.11.12.13 and NXDOMAIN with an SOA for everything else, or
// SERVFAIL for everything when failing is set, and records every question it receives.
type upstream struct {
	mu      sync.Mutex
	queries []string // "name type" of every query received
	failing bool
	servers []*dns.Server
}

// startUpstream serves on addr ("127.0.0.1:53") over UDP and TCP until the test ends.
func startUpstream(t *testing.T, failing bool, addrs ...string) *upstream {
	t.Helper()
	u := &upstream{failing: failing}
	for _, addr := range addrs {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("upstream %s: %v", addr, err)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("upstream %s: %v", addr, err)
		}
		for _, s := range []*dns.Server{{PacketConn: pc, Handler: u}, {Listener: l, Handler: u}} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			go s.ActivateAndServe()
			<-started
			u.servers = append(u.servers, s)
		}
	}
	t.Cleanup(func() {
		for _, s := range u.servers {
			s.Shutdown()
		}
	})
	return u
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	u.mu.Lock()
	u.queries = append(u.queries, strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype])
	u.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	switch {
	case u.failing:
		m.Rcode = dns.RcodeServerFailure
	case strings.EqualFold(q.Name, "test.example.") && q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 600},
			A: net.IPv4(10, 11, 12, 13)})
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns.example.", Mbox: "admin.example.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60})
	}
	w.WriteMsg(m)
}

// got reports whether the upstream received a query for name (any type, or the given one).
func (u *upstream) got(name string, qtype ...string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	want := strings.ToLower(strings.TrimSuffix(name, ".")) + "."
	for _, q := range u.queries {
		n, ty, _ := strings.Cut(q, " ")
		if n == want && (len(qtype) == 0 || ty == qtype[0]) {
			return true
		}
	}
	return false
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queries)
}

// digResult is what the tests read from dig's output.
type digResult struct {
	status  string   // NOERROR, NXDOMAIN, SERVFAIL, ...
	flags   []string // qr rd ra aa tc ...
	answers []string // "name ttl class type data", whitespace-normalised
	auth    []string
	raw     string
}

func (r digResult) flag(f string) bool { return contains(r.flags, f) }

// values returns the data column of the answers of type typ.
func (r digResult) values(typ string) []string {
	var out []string
	for _, a := range r.answers {
		f := strings.Fields(a)
		if len(f) >= 5 && f[3] == typ {
			out = append(out, strings.Join(f[4:], " "))
		}
	}
	return out
}

// dig runs the real dig inside a sandbox against 127.0.0.11 and parses its answer.
func dig(t *testing.T, ns string, args ...string) digResult {
	t.Helper()
	full := append([]string{"dig", "@127.0.0.11", "+tries=1", "+time=3", "+nocookie"}, args...)
	out, err := inNS(t, ns, full...)
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(full, " "), ns, err, out)
	}
	return parseDig(out)
}

func parseDig(out string) digResult {
	r := digResult{raw: out}
	section := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(line, "->>HEADER<<-"):
			if i := strings.Index(line, "status: "); i >= 0 {
				r.status = strings.TrimSuffix(strings.Fields(line[i+8:])[0], ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			fl := strings.TrimPrefix(line, ";; flags:")
			fl, _, _ = strings.Cut(fl, ";")
			r.flags = strings.Fields(fl)
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			section = "answer"
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			section = "auth"
		case strings.HasPrefix(line, ";;"), strings.TrimSpace(line) == "":
			if strings.TrimSpace(line) == "" {
				section = ""
			}
		case section == "answer":
			r.answers = append(r.answers, strings.Join(strings.Fields(line), " "))
		case section == "auth":
			r.auth = append(r.auth, strings.Join(strings.Fields(line), " "))
		}
	}
	return r
}

// eventually retries fn for up to a second: for assertions about the daemon coming back.
func eventually(t *testing.T, fn func() bool) bool {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if fn() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fn()
}

// TestDNSLargeForwardedAnswer: an answer over 4 KB from a strict upstream (FORMERR for a
// header whose counts do not match its sections, as BIND and Unbound) reaches dig over
// UDP-then-TCP and over TCP from the start, and glibc with `options edns0`: the forwarded
// TCP query keeps the client's OPT record (issue 14.3).
func TestDNSLargeForwardedAnswer(t *testing.T) {
	d := newDaemon(t)
	u := dnstest.StartStrict(t, "127.0.0.1:53")
	os.WriteFile(d.resolv, []byte("nameserver 127.0.0.1\noptions edns0\n"), 0o644)
	d.start("--dns-cache-size", "0") // every dig forwarded: the test is the forwarded TCP query
	d.must("network", "create", "--subnet", "10.61.0.0/24", "big")
	d.must("sandbox", "create", "--name", "a", "--network", "big")

	for _, args := range [][]string{{"+edns=0", "+bufsize=1232"}, {"+tcp", "+edns=0"}, {"+tcp", "+noedns"}} {
		r := dig(t, "a", append(args, "big.example")...)
		if r.status != "NOERROR" || len(r.values("A")) != dnstest.BigAnswers || r.flag("tc") {
			t.Errorf("dig %v: %s, %d answers, flags %v; want NOERROR with all %d\n%s", args, r.status, len(r.values("A")), r.flags, dnstest.BigAnswers, r.raw)
		}
	}
	out, err := inNS(t, "a", "getent", "ahostsv4", "big.example")
	if n := strings.Count(out, "STREAM"); err != nil || n != dnstest.BigAnswers {
		t.Errorf("getent ahostsv4 big.example: %d addresses (%v); want %d\n%s", n, err, dnstest.BigAnswers, out)
	}
	seen, rejected := u.Seen()
	if len(rejected) != 0 {
		t.Errorf("strict upstream answered FORMERR to %v", rejected)
	}
	tcp := 0
	for _, q := range seen {
		if q.Proto == "tcp" {
			tcp++
		}
	}
	if tcp < 3 {
		t.Errorf("upstream saw %d tcp queries (%v); want the TCP retries forwarded over TCP", tcp, seen)
	}

	// With the forward cache: the 4 KB answer kept from TCP is too big for a UDP client's
	// 1232 bytes, so that one is forwarded again (truncated) and retries over TCP, which
	// the cache answers whole.
	d.stop()
	d.start()
	for range 2 {
		for _, args := range [][]string{{"+edns=0", "+bufsize=1232"}, {"+tcp", "+edns=0"}, {"+noedns"}} {
			r := dig(t, "a", append(args, "big.example")...)
			if r.status != "NOERROR" || len(r.values("A")) != dnstest.BigAnswers || r.flag("tc") {
				t.Errorf("cache on: dig %v: %s, %d answers, flags %v; want NOERROR with all %d\n%s", args, r.status, len(r.values("A")), r.flags, dnstest.BigAnswers, r.raw)
			}
		}
	}
	if _, rejected := u.Seen(); len(rejected) != 0 {
		t.Errorf("cache on: strict upstream answered FORMERR to %v", rejected)
	}
}
