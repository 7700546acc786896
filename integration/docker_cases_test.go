package integration

// TestDockerCases replays the cases of ../shared/reference/docker-dns.md §5 (numbered as
// there; "x-..." rows are extra checks) against berth, with the answers a real Docker engine
// gave as the expectations.
//
// Oracle: Debian's docker.io 20.10.24+dfsg1, run by ../shared/tools/docker-oracle.sh in a
// private net+mount namespace, containers from the busybox image "bb". Its host resolv.conf
// was a file bind-mounted over /etc/resolv.conf inside the oracle's mount namespace
// ("nameserver 127.0.0.1"), and "U" was a miekg/dns server on 127.0.0.1:53 in the oracle's
// netns answering exactly like startUpstream here (A test.example = 10.11.12.13 TTL 600,
// NXDOMAIN + SOA example. for everything else) and logging every query it received.
// Docker refuses one-letter container names, so the §5 names a, b, x become ca, cb, cx;
// the oracle's subnets are used here too (n1 10.70.0.0/24, n2 10.71.0.0/24). Queries were
// `dig @127.0.0.11 +tries=1 +nocookie ...` from the container's netns (nsenter -n), as here.
//
// Each row says "docker 20.10 oracle: ..." with what Docker answered. Where the reference
// says that newer Docker behaves differently, or lists the behaviour among the quirks berth
// need not copy (§7), the row says so and asserts berth's intended behaviour instead.

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/nsutil"
)

// dockerCase is one query and the answer expected for it.
type dockerCase struct {
	id     string   // §5 row number, or x-<what> for extra checks
	from   string   // the sandbox that asks
	q      []string // dig arguments; {name} and {name.id} expand to the sandbox's n1 address and short id
	status string   // rcode as dig prints it
	flags  string   // header flags exactly as dig prints them
	answer []string // the whole answer section, "owner ttl class type data", whitespace-normalised
	soa    bool     // the authority section is the upstream's one SOA (else it must be empty)
	opt    bool     // the reply carries an OPT record
	fwd    string   // "name TYPE" the upstream must receive for this query; "" = the upstream receives nothing
}

const (
	uSOA     = true
	fwdNone  = ""
	optNone  = false
	optEcho  = true
	localFl  = "qr rd ra" // local answers: QR, RD copied, RA set, AA clear
	upFl     = "qr rd ra" // what U's replies carry, relayed verbatim
	testAddr = "test.example. 600 IN A 10.11.12.13"
)

// checkDockerCase runs one row and reports every difference from the expectation.
func checkDockerCase(t *testing.T, u *upstream, rep *strings.Replacer, c dockerCase) {
	t.Helper()
	args := make([]string, len(c.q))
	for i, a := range c.q {
		args[i] = rep.Replace(a)
	}
	before := u.count()
	r := dig(t, c.from, args...)
	var errs []string
	if r.status != c.status {
		errs = append(errs, fmt.Sprintf("status %s, want %s", r.status, c.status))
	}
	if got := strings.Join(r.flags, " "); got != c.flags {
		errs = append(errs, fmt.Sprintf("flags %q, want %q", got, c.flags))
	}
	want := make([]string, len(c.answer))
	for i, a := range c.answer {
		want[i] = rep.Replace(a)
	}
	got := slices.Clone(r.answers)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		errs = append(errs, fmt.Sprintf("answers %q, want %q", r.answers, want))
	}
	if gotSOA := len(r.auth) == 1 && strings.Contains(r.auth[0], " SOA "); gotSOA != c.soa || (!c.soa && len(r.auth) != 0) {
		errs = append(errs, fmt.Sprintf("authority %q, want upstream SOA: %v", r.auth, c.soa))
	}
	if gotOPT := strings.Contains(r.raw, "OPT PSEUDOSECTION"); gotOPT != c.opt {
		errs = append(errs, fmt.Sprintf("OPT record present: %v, want %v", gotOPT, c.opt))
	}
	u.mu.Lock()
	sent := slices.Clone(u.queries[before:])
	u.mu.Unlock()
	switch {
	case c.fwd == fwdNone && len(sent) != 0:
		errs = append(errs, fmt.Sprintf("upstream received %q, want nothing", sent))
	case c.fwd != fwdNone && !slices.Equal(sent, []string{rep.Replace(c.fwd)}):
		errs = append(errs, fmt.Sprintf("upstream received %q, want exactly %q", sent, rep.Replace(c.fwd)))
	}
	if len(errs) > 0 {
		t.Errorf("case %s: from %s: dig %s:\n  %s\n%s", c.id, c.from, strings.Join(args, " "), strings.Join(errs, "\n  "), r.raw)
	}
}

// dockerReplacer expands {name} to the sandbox's address on network and {name.id} to its
// 12-hex short id, for the given sandboxes.
func dockerReplacer(d *daemon, network string, names ...string) *strings.Replacer {
	var pairs []string
	for _, n := range names {
		s := d.inspectSandbox(n)
		pairs = append(pairs, "{"+n+".id}", s.ID[:12], "{"+n+"}", s.Networks[network].IPAddress)
	}
	return strings.NewReplacer(pairs...)
}

func TestDockerCases(t *testing.T) {
	t.Run("user-networks", testDockerUserNetworks)
	t.Run("malformed", testDockerMalformed)
	t.Run("no-upstream", testDockerNoUpstream)
	t.Run("host-ndots", testDockerHostNDots)
	t.Run("default-bridge", testDockerDefaultBridge)
}

// dockerSetup: host resolv.conf "nameserver 127.0.0.1" with U there (dialled from the
// daemon's netns); n1 with ca, cb (--network-alias foo1 foo2, --hostname bhost) and ce
// (--add-host extra:86.75.30.9); n2 with cx. Exactly the oracle's setup.
func dockerSetup(t *testing.T) (*daemon, *upstream) {
	d := newDaemon(t)
	u := startUpstream(t, false, "127.0.0.1:53")
	if err := os.WriteFile(d.resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Docker has no forward cache: its cases say which questions reach U, one per query
	// (berth's cache is TestDNSCache's).
	d.start("--dns-cache-size", "0")
	d.must("network", "create", "--subnet", "10.70.0.0/24", "n1")
	d.must("network", "create", "--subnet", "10.71.0.0/24", "n2")
	d.must("sandbox", "create", "--name", "ca", "--network", "n1")
	d.must("sandbox", "create", "--name", "cb", "--network", "n1", "--network-alias", "foo1", "--network-alias", "foo2", "--hostname", "bhost")
	d.must("sandbox", "create", "--name", "cx", "--network", "n2")
	d.must("sandbox", "create", "--name", "ce", "--network", "n1", "--add-host", "extra:86.75.30.9")
	return d, u
}

func testDockerUserNetworks(t *testing.T) {
	d, u := dockerSetup(t)
	rep := dockerReplacer(d, "n1", "ca", "cb")
	cbPTR, err := dns.ReverseAddr(d.ip("cb", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []dockerCase{
		// docker 20.10 oracle: NOERROR, flags qr rd ra, "cb. 600 IN A 10.70.0.3", U got nothing.
		{id: "1", from: "ca", q: []string{"+noedns", "cb"}, status: "NOERROR", flags: localFl, answer: []string{"cb. 600 IN A {cb}"}},
		// docker 20.10 oracle: NOERROR, owner "CB." / "cB." as asked, TTL 600, qr rd ra.
		{id: "2", from: "ca", q: []string{"+noedns", "CB"}, status: "NOERROR", flags: localFl, answer: []string{"CB. 600 IN A {cb}"}},
		{id: "2", from: "ca", q: []string{"+noedns", "cB."}, status: "NOERROR", flags: localFl, answer: []string{"cB. 600 IN A {cb}"}},
		// docker 20.10 oracle: own name answers, "ca. 600 IN A 10.70.0.2".
		{id: "3", from: "ca", q: []string{"+noedns", "ca"}, status: "NOERROR", flags: localFl, answer: []string{"ca. 600 IN A {ca}"}},
		// docker 20.10 oracle: both aliases answer cb's address, TTL 600.
		{id: "4", from: "ca", q: []string{"+noedns", "foo1"}, status: "NOERROR", flags: localFl, answer: []string{"foo1. 600 IN A {cb}"}},
		{id: "4", from: "ca", q: []string{"+noedns", "foo2"}, status: "NOERROR", flags: localFl, answer: []string{"foo2. 600 IN A {cb}"}},
		// docker 20.10 oracle: the 12-hex short id answers cb's address.
		{id: "6", from: "ca", q: []string{"+noedns", "{cb.id}"}, status: "NOERROR", flags: localFl, answer: []string{"{cb.id}. 600 IN A {cb}"}},
		// docker 20.10 oracle: --hostname bhost answers cb's address (20.10 already lists the
		// hostname among the endpoint's aliases; Engine >= 25 does it through DNSNames).
		{id: "7", from: "ca", q: []string{"+noedns", "bhost"}, status: "NOERROR", flags: localFl, answer: []string{"bhost. 600 IN A {cb}"}},
		// docker 20.10 oracle: "cb.n1. 600 IN A 10.70.0.3", owner as asked.
		{id: "10", from: "ca", q: []string{"+noedns", "cb.n1"}, status: "NOERROR", flags: localFl, answer: []string{"cb.n1. 600 IN A {cb}"}},
		// docker 20.10 oracle: the name part is case-insensitive and kept as asked: "CB.n1. 600 IN A".
		{id: "x-name.network", from: "ca", q: []string{"+noedns", "CB.n1"}, status: "NOERROR", flags: localFl, answer: []string{"CB.n1. 600 IN A {cb}"}},
		// docker 20.10 oracle: forwarded, U's NXDOMAIN + SOA (the network part is matched
		// case-sensitively). §7 quirk berth need not copy: berth matches it case-insensitively.
		{id: "x-name.network", from: "ca", q: []string{"+noedns", "cb.N1"}, status: "NOERROR", flags: localFl, answer: []string{"cb.N1. 600 IN A {cb}"}},
		// docker 20.10 oracle: alias, hostname, short id and trailing dot all take the .network suffix.
		{id: "x-name.network", from: "ca", q: []string{"+noedns", "foo1.n1"}, status: "NOERROR", flags: localFl, answer: []string{"foo1.n1. 600 IN A {cb}"}},
		{id: "x-name.network", from: "ca", q: []string{"+noedns", "bhost.n1"}, status: "NOERROR", flags: localFl, answer: []string{"bhost.n1. 600 IN A {cb}"}},
		{id: "x-name.network", from: "ca", q: []string{"+noedns", "{cb.id}.n1"}, status: "NOERROR", flags: localFl, answer: []string{"{cb.id}.n1. 600 IN A {cb}"}},
		{id: "x-name.network", from: "ca", q: []string{"+noedns", "cb.n1."}, status: "NOERROR", flags: localFl, answer: []string{"cb.n1. 600 IN A {cb}"}},
		// docker 20.10 oracle: cb.<a network cb is not on> is forwarded: U's NXDOMAIN + SOA.
		{id: "x-name.network", from: "ca", q: []string{"+noedns", "cb.n2"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cb.n2. A"},
		// docker 20.10 oracle: from cx (n2 only) both are forwarded: U's NXDOMAIN + SOA, never cb's address.
		{id: "12", from: "cx", q: []string{"+noedns", "cb"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cb. A"},
		{id: "12", from: "cx", q: []string{"+noedns", "cb.n1"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cb.n1. A"},
		// docker 20.10 oracle: NOERROR, 0 answers, no SOA, qr rd ra; U got nothing.
		{id: "19", from: "ca", q: []string{"+noedns", "AAAA", "cb"}, status: "NOERROR", flags: localFl},
		// docker 20.10 oracle: "3.0.70.10.in-addr.arpa. 600 IN PTR cb.n1." (cb has aliases and a hostname).
		{id: "22", from: "ca", q: []string{"+noedns", "-x", "{cb}"}, status: "NOERROR", flags: localFl, answer: []string{cbPTR + " 600 IN PTR cb.n1."}},
		// docker 20.10 oracle: PTR of an address no sandbox has is forwarded: U's NXDOMAIN + SOA.
		{id: "x-ptr-unknown", from: "ca", q: []string{"+noedns", "-x", "10.99.0.9"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "9.0.99.10.in-addr.arpa. PTR"},
		// docker 20.10 oracle: MX cb: NOERROR, 0 answers, qr rd ra, not forwarded; MX nosuch.example: forwarded, NXDOMAIN + SOA.
		{id: "26", from: "ca", q: []string{"+noedns", "MX", "cb"}, status: "NOERROR", flags: localFl},
		{id: "26", from: "ca", q: []string{"+noedns", "MX", "nosuch.example"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "nosuch.example. MX"},
		// docker 20.10 oracle: TXT, CNAME, ANY (dig sends ANY over TCP) and SRV of a local name
		// are all forwarded; U's NXDOMAIN + SOA comes back.
		{id: "27", from: "ca", q: []string{"+noedns", "TXT", "cb"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cb. TXT"},
		{id: "27", from: "ca", q: []string{"+noedns", "CNAME", "cb"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cb. CNAME"},
		{id: "27", from: "ca", q: []string{"+noedns", "ANY", "cb"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cb. ANY"},
		{id: "27", from: "ca", q: []string{"+noedns", "SRV", "_x._tcp.cb"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "_x._tcp.cb. SRV"},
		// docker 20.10 oracle: "test.example. 600 IN A 10.11.12.13" from U; nosuch.example: NXDOMAIN with U's SOA.
		{id: "28", from: "ca", q: []string{"+noedns", "test.example"}, status: "NOERROR", flags: upFl, answer: []string{testAddr}, fwd: "test.example. A"},
		{id: "28", from: "ca", q: []string{"+noedns", "nosuch.example"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "nosuch.example. A"},
		// docker 20.10 oracle: AAAA of an unknown name is forwarded: NXDOMAIN + SOA.
		{id: "x-aaaa-unknown", from: "ca", q: []string{"+noedns", "AAAA", "nosuch.example"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "nosuch.example. AAAA"},
		// docker 20.10 oracle: no ndots anywhere: a single-label unknown name is forwarded, NXDOMAIN + SOA.
		{id: "42", from: "ca", q: []string{"+noedns", "nosuchsingle"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "nosuchsingle. A"},
		// docker 20.10 oracle: --add-host names are not served by the embedded DNS: forwarded, NXDOMAIN,
		// from the container that has the entry and from a peer alike.
		{id: "50", from: "ce", q: []string{"+noedns", "extra"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "extra. A"},
		{id: "50", from: "ca", q: []string{"+noedns", "extra"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "extra. A"},
		// docker 20.10 oracle: over TCP the same answers, local and forwarded (U saw the forward over TCP).
		{id: "53", from: "ca", q: []string{"+noedns", "+tcp", "cb"}, status: "NOERROR", flags: localFl, answer: []string{"cb. 600 IN A {cb}"}},
		{id: "53", from: "ca", q: []string{"+noedns", "+tcp", "test.example"}, status: "NOERROR", flags: upFl, answer: []string{testAddr}, fwd: "test.example. A"},
		// docker 20.10 oracle: RD clear in the query -> flags "qr ra": RD is copied, RA always set.
		{id: "x-rd", from: "ca", q: []string{"+noedns", "+norecurse", "cb"}, status: "NOERROR", flags: "qr ra", answer: []string{"cb. 600 IN A {cb}"}},
		// docker 20.10 oracle: EDNS queries (A and AAAA) get the local answer with NO OPT record
		// (ADDITIONAL: 0). §7 quirk berth need not copy: berth echoes an OPT record.
		{id: "x-edns", from: "ca", q: []string{"cb"}, status: "NOERROR", flags: localFl, answer: []string{"cb. 600 IN A {cb}"}, opt: optEcho},
		{id: "x-edns", from: "ca", q: []string{"AAAA", "cb"}, status: "NOERROR", flags: localFl, opt: optEcho},
		// docker 20.10 oracle: an EDNS query for an unknown name reaches U with its OPT; U's reply
		// (no OPT) comes back as it is.
		{id: "x-edns", from: "ca", q: []string{"+bufsize=1232", "nosuch.example"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "nosuch.example. A", opt: optNone},
		// docker 20.10 oracle: the query class is not checked: "cb CH A" is answered locally with
		// "cb. 600 IN A 10.70.0.3", NOERROR, qr rd ra, U got nothing (docker-dns.md §2.5 "The
		// query class is not checked"; not among the §7 quirks). berth deliberately differs
		// (README): its names exist only in class IN, so a CH question is forwarded and the
		// upstream's answer relayed, rather than answered with an IN record.
		{id: "x-class", from: "ca", q: []string{"+noedns", "cb", "CH", "A"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cb. A"},
	}
	for _, c := range cases {
		checkDockerCase(t, u, rep, c)
	}

	// 17: a removed sandbox's name is forwarded; when it comes back (here on a new address,
	// a filler having taken the old one) its current address answers.
	// docker 20.10 oracle (docker stop / start, filler started in between): running: cs.
	// 600 IN A 10.70.0.5; stopped: forwarded, NXDOMAIN + SOA; started again: 10.70.0.6;
	// removed: forwarded, NXDOMAIN + SOA.
	d.must("sandbox", "create", "--name", "cs", "--network", "n1")
	old := d.ip("cs", "n1")
	checkDockerCase(t, u, rep, dockerCase{id: "17", from: "ca", q: []string{"+noedns", "cs"}, status: "NOERROR", flags: localFl, answer: []string{"cs. 600 IN A " + old}})
	d.must("sandbox", "rm", "-f", "cs")
	checkDockerCase(t, u, rep, dockerCase{id: "17", from: "ca", q: []string{"+noedns", "cs"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "cs. A"})
	// The filler asks for the old address: a dynamic one may not get it while the removed
	// sandbox's veth is still being deleted in the background (the reaper holds its
	// address until then; a static --ip waits for it), which under load made this setup
	// flaky.
	d.must("sandbox", "create", "--name", "cfill", "--network", "n1", "--ip", old)
	d.must("sandbox", "create", "--name", "cs", "--network", "n1")
	if cur := d.ip("cs", "n1"); cur == old || d.ip("cfill", "n1") != old {
		t.Errorf("case 17 setup: cs came back on %s (old %s), cfill on %s", cur, old, d.ip("cfill", "n1"))
	}
	checkDockerCase(t, u, rep, dockerCase{id: "17", from: "ca", q: []string{"+noedns", "cs"}, status: "NOERROR", flags: localFl, answer: []string{"cs. 600 IN A " + d.ip("cs", "n1")}})

	// 50: the --add-host line is in ce's hosts file.
	// docker 20.10 oracle: "86.75.30.9\textra" in /etc/hosts.
	if hosts, _ := inNS(t, "ce", "cat", "/etc/hosts"); !strings.Contains(hosts, "86.75.30.9\textra\n") {
		t.Errorf("case 50: ce's hosts lacks \"86.75.30.9\\textra\":\n%s", hosts)
	}

	// 20: a dual-stack network.
	// docker 20.10 oracle (n6 --ipv6 --subnet 10.76.0.0/24 --subnet fd00:1::/64): AAAA c6b:
	// "c6b. 600 IN AAAA fd00:1::3"; A c6b: "c6b. 600 IN A 10.76.0.3"; PTR of both addresses:
	// "c6b.n6."; nothing forwarded.
	d.must("network", "create", "--ipv6", "--subnet", "10.76.0.0/24", "--subnet", "fd00:1::/64", "n6")
	d.must("sandbox", "create", "--name", "c6a", "--network", "n6")
	d.must("sandbox", "create", "--name", "c6b", "--network", "n6")
	c6b := d.inspectSandbox("c6b").Networks["n6"]
	if c6b.GlobalIPv6Address == "" {
		t.Fatalf("case 20: c6b has no IPv6 address on n6: %+v", c6b)
	}
	rev6, _ := dns.ReverseAddr(c6b.GlobalIPv6Address)
	rev4, _ := dns.ReverseAddr(c6b.IPAddress)
	for _, c := range []dockerCase{
		{id: "20", from: "c6a", q: []string{"+noedns", "AAAA", "c6b"}, status: "NOERROR", flags: localFl, answer: []string{"c6b. 600 IN AAAA " + c6b.GlobalIPv6Address}},
		{id: "20", from: "c6a", q: []string{"+noedns", "A", "c6b"}, status: "NOERROR", flags: localFl, answer: []string{"c6b. 600 IN A " + c6b.IPAddress}},
		{id: "20", from: "c6a", q: []string{"+noedns", "-x", c6b.GlobalIPv6Address}, status: "NOERROR", flags: localFl, answer: []string{rev6 + " 600 IN PTR c6b.n6."}},
		{id: "20", from: "c6a", q: []string{"+noedns", "-x", c6b.IPAddress}, status: "NOERROR", flags: localFl, answer: []string{rev4 + " 600 IN PTR c6b.n6."}},
	} {
		checkDockerCase(t, u, rep, c)
	}

	// An interface on an IPv4-only network has no IPv6 address, not even a link-local one
	// (Docker 26 and later set disable_ipv6 on it, moby #47963); one on a dual-stack network has both.
	if out, _ := inNS(t, "ca", "ip", "-6", "-o", "addr", "show", "dev", "eth0"); strings.TrimSpace(out) != "" {
		t.Errorf("ca (IPv4-only n1): eth0 has IPv6 addresses:\n%s", out)
	}
	if out, _ := inNS(t, "c6b", "ip", "-6", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, c6b.GlobalIPv6Address+"/64") || !strings.Contains(out, "inet6 fe80::") {
		t.Errorf("c6b (dual-stack n6): eth0 lacks its global or link-local IPv6 address:\n%s", out)
	}

	// User-network resolv.conf. docker 20.10 oracle: "nameserver 127.0.0.11\noptions ndots:0"
	// and nothing else; newer Docker (§1.2) adds the comment lines, as berth does.
	out, _ := inNS(t, "ca", "cat", "/etc/resolv.conf")
	if ns := dockerResolvLines(out, "nameserver"); !slices.Equal(ns, []string{"nameserver 127.0.0.11"}) || !slices.Equal(dockerResolvLines(out, "options"), []string{"options ndots:0"}) {
		t.Errorf("ca's resolv.conf: nameservers %q options %q, want 127.0.0.11 and ndots:0:\n%s", ns, dockerResolvLines(out, "options"), out)
	}
}

// dockerResolvLines returns the lines of a resolv.conf that start with directive.
func dockerResolvLines(file, directive string) []string {
	var out []string
	for _, l := range strings.Split(file, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == directive {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

// dockerRawReply sends pkt over UDP to 127.0.0.11:53 from inside sandbox ns and returns the
// reply, or nil when none came within wait.
func dockerRawReply(t *testing.T, ns string, pkt []byte, wait time.Duration) *dns.Msg {
	t.Helper()
	var reply *dns.Msg
	err := nsutil.Do("/run/netns/"+ns, func() error {
		c, err := net.Dial("udp", "127.0.0.11:53")
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(pkt); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			return nil // no reply
		}
		reply = new(dns.Msg)
		return reply.Unpack(buf[:n])
	})
	if err != nil {
		t.Fatalf("raw query from %s: %v", ns, err)
	}
	return reply
}

// testDockerMalformed: what the server does with packets dig does not send.
func testDockerMalformed(t *testing.T) {
	d, u := dockerSetup(t)
	_ = d
	pack := func(edit func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("cb.", dns.TypeA)
		edit(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type want struct {
		noReply bool
		rcode   int
	}
	cases := []struct {
		name string
		pkt  []byte
		want want
		note string
	}{
		// docker 20.10 oracle: FORMERR, QR=1, RD copied, RA=0, no question echoed.
		{"QDCOUNT=2", pack(func(m *dns.Msg) {
			m.Question = append(m.Question, dns.Question{Name: "test.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
		}), want{rcode: dns.RcodeFormatError}, ""},
		// docker 20.10 oracle: FORMERR, RA=0.
		{"QDCOUNT=0", pack(func(m *dns.Msg) { m.Question = nil }), want{rcode: dns.RcodeFormatError}, ""},
		// docker 20.10 oracle: NOTIMP, opcode echoed, RA=0 (dig +opcode=5 prints "status: NOTIMP").
		{"opcode UPDATE", pack(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), want{rcode: dns.RcodeNotImplemented}, ""},
		// docker 20.10 oracle: NOTIMP, RA=0.
		{"opcode STATUS", pack(func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }), want{rcode: dns.RcodeNotImplemented}, ""},
		// docker 20.10 oracle: no reply to a packet with QR=1.
		{"QR=1", pack(func(m *dns.Msg) { m.Response = true }), want{noReply: true}, ""},
		// docker 20.10 oracle: no reply to 5 bytes.
		{"short", []byte{1, 2, 3, 4, 5}, want{noReply: true}, ""},
		// docker 20.10 oracle: a header claiming one question followed by junk: FORMERR, RA=0.
		{"bad body", []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, want{rcode: dns.RcodeFormatError}, ""},
	}
	for _, c := range cases {
		before := u.count()
		r := dockerRawReply(t, "ca", c.pkt, 2*time.Second)
		switch {
		case c.want.noReply && r != nil:
			t.Errorf("%s: got a reply (%s), want none", c.name, dns.RcodeToString[r.Rcode])
		case c.want.noReply:
		case r == nil:
			t.Errorf("%s: no reply, want %s", c.name, dns.RcodeToString[c.want.rcode])
		case r.Rcode != c.want.rcode || !r.Response || r.RecursionAvailable || r.Authoritative || !r.RecursionDesired:
			t.Errorf("%s: rcode %s qr %v ra %v aa %v rd %v, want %s with qr, rd copied, no ra, no aa",
				c.name, dns.RcodeToString[r.Rcode], r.Response, r.RecursionAvailable, r.Authoritative, r.RecursionDesired, dns.RcodeToString[c.want.rcode])
		}
		if n := u.count() - before; n != 0 {
			t.Errorf("%s: upstream received %d queries", c.name, n)
		}
	}
	// Still serving.
	if r := dig(t, "ca", "+noedns", "cb"); len(r.values("A")) != 1 {
		t.Errorf("after malformed packets: A cb = %v", r.answers)
	}
}

// testDockerNoUpstream: case 34 and a dead upstream.
func testDockerNoUpstream(t *testing.T) {
	d := newDaemon(t)
	if err := os.WriteFile(d.resolv, []byte("# no nameservers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	d.must("network", "create", "--subnet", "10.70.0.0/24", "n1")
	d.must("sandbox", "create", "--name", "ca", "--network", "n1")
	d.must("sandbox", "create", "--name", "cb", "--network", "n1")
	// A recording server where nothing should arrive: not named anywhere.
	u := startUpstream(t, false, "127.0.0.1:53")
	rep := dockerReplacer(d, "n1", "cb")
	// 34: docker 20.10 oracle: NO REPLY at all (dig: "timed out", 25 s wait; it falls back to
	// Google's servers, unreachable there, and drops the query when they fail). Newer Docker
	// (§2.6, §1.2): SERVFAIL generated locally with RA=0, and the comment
	// "# NO EXTERNAL NAMESERVERS DEFINED" in resolv.conf. berth follows the newer behaviour,
	// but sets RA on the SERVFAIL: recursion is available, it failed (issue 14.3).
	checkDockerCase(t, u, rep, dockerCase{id: "34", from: "ca", q: []string{"+noedns", "test.example"}, status: "SERVFAIL", flags: "qr rd ra"})
	// docker 20.10 oracle: container names still resolve: "cb. 600 IN A 10.70.0.3"; AAAA NODATA.
	checkDockerCase(t, u, rep, dockerCase{id: "34", from: "ca", q: []string{"+noedns", "cb"}, status: "NOERROR", flags: localFl, answer: []string{"cb. 600 IN A {cb}"}})
	checkDockerCase(t, u, rep, dockerCase{id: "34", from: "ca", q: []string{"+noedns", "AAAA", "cb"}, status: "NOERROR", flags: localFl})
	// docker 20.10 oracle: resolv.conf "nameserver 127.0.0.11\noptions ndots:0", no comment
	// (newer Docker adds "# NO EXTERNAL NAMESERVERS DEFINED").
	out, _ := inNS(t, "ca", "cat", "/etc/resolv.conf")
	if !slices.Equal(dockerResolvLines(out, "nameserver"), []string{"nameserver 127.0.0.11"}) || !strings.Contains(out, "# NO EXTERNAL NAMESERVERS DEFINED") {
		t.Errorf("case 34: resolv.conf:\n%s", out)
	}

	// A host nameserver where nothing listens (dialled from the daemon's netns).
	// docker 20.10 oracle (host resolv.conf "nameserver 127.0.0.3"): NO REPLY (dig timed out
	// after 12 s); names still resolve. Newer Docker (§2.6 "every upstream tried failed"):
	// SERVFAIL, RA=0. berth follows the newer behaviour, with RA set.
	if err := os.WriteFile(d.resolv, []byte("nameserver 127.0.0.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.must("sandbox", "create", "--name", "cdead", "--network", "n1")
	checkDockerCase(t, u, rep, dockerCase{id: "x-dead-upstream", from: "cdead", q: []string{"+noedns", "test.example"}, status: "SERVFAIL", flags: "qr rd ra"})
	checkDockerCase(t, u, rep, dockerCase{id: "x-dead-upstream", from: "cdead", q: []string{"+noedns", "cb"}, status: "NOERROR", flags: localFl, answer: []string{"cb. 600 IN A {cb}"}})
}

// testDockerHostNDots: an ndots option in the host file stops single-label A/AAAA names at
// the resolver (§2.6), other types still go out.
func testDockerHostNDots(t *testing.T) {
	d := newDaemon(t)
	u := startUpstream(t, false, "127.0.0.1:53")
	if err := os.WriteFile(d.resolv, []byte("nameserver 127.0.0.1\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	d.must("network", "create", "--subnet", "10.70.0.0/24", "n1")
	d.must("sandbox", "create", "--name", "cnd", "--network", "n1")
	rep := dockerReplacer(d, "n1", "cnd")
	for _, c := range []dockerCase{
		// docker 20.10 oracle: NOERROR, 0 answers, qr rd ra, U got nothing.
		{id: "x-ndots", from: "cnd", q: []string{"+noedns", "nosuchsingle"}, status: "NOERROR", flags: localFl},
		{id: "x-ndots", from: "cnd", q: []string{"+noedns", "AAAA", "nosuchsingle"}, status: "NOERROR", flags: localFl},
		// docker 20.10 oracle: MX of the same name is forwarded: NXDOMAIN + SOA.
		{id: "x-ndots", from: "cnd", q: []string{"+noedns", "MX", "nosuchsingle"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "nosuchsingle. MX"},
		// docker 20.10 oracle: a dotted name is forwarded: NXDOMAIN + SOA.
		{id: "x-ndots", from: "cnd", q: []string{"+noedns", "nosuch.example"}, status: "NXDOMAIN", flags: upFl, soa: uSOA, fwd: "nosuch.example. A"},
		// docker 20.10 oracle: the own name still answers, "cnd. 600 IN A".
		{id: "x-ndots", from: "cnd", q: []string{"+noedns", "cnd"}, status: "NOERROR", flags: localFl, answer: []string{"cnd. 600 IN A {cnd}"}},
	} {
		checkDockerCase(t, u, rep, c)
	}
	// docker 20.10 oracle: resolv.conf "nameserver 127.0.0.11\noptions ndots:2" (the host's ndots kept, no ndots:0).
	out, _ := inNS(t, "cnd", "cat", "/etc/resolv.conf")
	if got := dockerResolvLines(out, "options"); !slices.Equal(got, []string{"options ndots:2"}) {
		t.Errorf("x-ndots: options %q, want [options ndots:2]:\n%s", got, out)
	}
}

// testDockerDefaultBridge: cases 45, 46, 47.
func testDockerDefaultBridge(t *testing.T) {
	d := newDaemon(t)
	if err := os.WriteFile(d.resolv, []byte("nameserver 127.0.0.1\nnameserver ::1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	// timeout:1 attempts:1 only make one's failing lookups below quick (8.8.8.8 is
	// unreachable here); the oracle's "one" had no options.
	d.must("sandbox", "create", "--name", "one", "--dns-option", "timeout:1", "--dns-option", "attempts:1")
	d.must("sandbox", "create", "--name", "two", "--link", "one:onetwo")
	oneHostsBefore, _ := inNS(t, "one", "cat", "/etc/hosts")

	// 45: docker 20.10 oracle (host resolv.conf 127.0.0.1 and ::1): two's resolv.conf is
	// "nameserver 8.8.8.8\nnameserver 8.8.4.4" (newer Docker adds "# Used default nameservers.").
	out, _ := inNS(t, "two", "cat", "/etc/resolv.conf")
	if got := dockerResolvLines(out, "nameserver"); !slices.Equal(got, []string{"nameserver 8.8.8.8", "nameserver 8.8.4.4"}) {
		t.Errorf("case 45: nameservers %q, want 8.8.8.8 and 8.8.4.4:\n%s", got, out)
	}

	// 46: docker 20.10 oracle: from one, `nslookup three` and `ping three` fail ("bad
	// address"); one's /etc/hosts names only one itself, before and after peers start/stop.
	d.must("sandbox", "create", "--name", "three")
	if out, err := inNS(t, "one", "getent", "ahostsv4", "three"); err == nil {
		t.Errorf("case 46: getent ahostsv4 three from one: %q, want a failure", out)
	}
	if out, err := inNS(t, "one", "dig", "@127.0.0.11", "+tries=1", "+time=1", "three"); err == nil && strings.Contains(out, "status:") {
		t.Errorf("case 46: 127.0.0.11 answered on the default bridge:\n%s", out)
	}
	if h, _ := inNS(t, "one", "cat", "/etc/hosts"); h != oneHostsBefore {
		t.Errorf("case 46: one's hosts changed when three started:\nbefore:\n%s\nafter:\n%s", oneHostsBefore, h)
	}
	d.must("sandbox", "rm", "-f", "three")
	if h, _ := inNS(t, "one", "cat", "/etc/hosts"); h != oneHostsBefore {
		t.Errorf("case 46: one's hosts changed when three went away:\nbefore:\n%s\nafter:\n%s", oneHostsBefore, h)
	}

	// 47: docker 20.10 oracle: two's hosts has "172.17.0.2\tonetwo 9478fa4a78a9 one"
	// (alias, one's hostname = its short id, one's name); after `stop one`, a filler taking
	// .2 and `start one`, the line reads "172.17.0.5\tonetwo 9478fa4a78a9 one". berth's
	// default hostname is the name (a deliberate difference, README), so the line is
	// "IP\tonetwo one". berth has no stop/start: one leaves and rejoins the bridge.
	linkLine := func() string {
		h, _ := inNS(t, "two", "cat", "/etc/hosts")
		for _, l := range strings.Split(h, "\n") {
			if strings.Contains(l, "\tonetwo ") {
				return l
			}
		}
		return ""
	}
	old := d.ip("one", "bridge")
	if got := linkLine(); got != old+"\tonetwo one" {
		t.Errorf("case 47: two's link line %q, want %q", got, old+"\tonetwo one")
	}
	d.must("network", "disconnect", "bridge", "one")
	d.must("sandbox", "create", "--name", "filler")
	d.must("network", "connect", "bridge", "one")
	cur := d.ip("one", "bridge")
	if cur == old {
		t.Fatalf("case 47 setup: one came back on its old address %s", cur)
	}
	if got := linkLine(); got != cur+"\tonetwo one" {
		t.Errorf("case 47: after one's address changed %s -> %s, two's link line is %q, want %q", old, cur, got, cur+"\tonetwo one")
	}
}
