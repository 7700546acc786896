package integration

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/internal/nsutil"
)

// dnsSetup starts a daemon whose host resolv.conf points at a recording upstream on
// 127.0.0.1 (dialled from the daemon's netns), with network app and sandboxes web and db.
func dnsSetup(t *testing.T) (*daemon, *upstream) { return dnsSetupAt(t, false) }

// dnsSetupAt is dnsSetup with the daemon at --log-level debug when debug is set.
func dnsSetupAt(t *testing.T, debug bool) (*daemon, *upstream) {
	d := newDaemon(t)
	d.debug = debug
	u := startUpstream(t, false, "127.0.0.1:53")
	os.WriteFile(d.resolv, []byte("nameserver 127.0.0.1\nsearch corp.example\noptions edns0\n"), 0o644)
	d.start()
	d.must("network", "create", "--subnet", "10.60.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app", "--hostname", "webhost")
	d.must("sandbox", "create", "--name", "db", "--network", "app", "--network-alias", "database", "--network-alias", "shared")
	return d, u
}

func TestDNSLocalNames(t *testing.T) {
	d, u := dnsSetup(t)
	web := d.inspectSandbox("web")
	webIP := web.Networks["app"].IPAddress
	cases := []struct{ q, owner string }{
		{"web", "web."},
		{"WEB", "WEB."},
		{"wEb.", "wEb."},
		{"web.app", "web.app."},
		{"web.APP", "web.APP."},
		{web.ID[:12], web.ID[:12] + "."},
		{"webhost", "webhost."},
	}
	for _, tc := range cases {
		r := dig(t, "db", tc.q)
		if r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{webIP}) {
			t.Errorf("A %s: %s %v, want NOERROR %s\n%s", tc.q, r.status, r.answers, webIP, r.raw)
			continue
		}
		f := strings.Fields(r.answers[0])
		if f[0] != tc.owner || f[1] != "600" {
			t.Errorf("A %s: owner/ttl %s %s, want %s 600", tc.q, f[0], f[1], tc.owner)
		}
		if !r.flag("ra") || r.flag("aa") {
			t.Errorf("A %s: flags %v, want ra and not aa", tc.q, r.flags)
		}
	}
	// Aliases, from the other side; the own name too.
	dbIP := d.ip("db", "app")
	for _, q := range []string{"database", "shared", "db"} {
		if r := dig(t, "web", q); !slices.Equal(r.values("A"), []string{dbIP}) {
			t.Errorf("A %s from web: %v, want %s", q, r.answers, dbIP)
		}
	}
	if r := dig(t, "web", "web"); !slices.Equal(r.values("A"), []string{webIP}) {
		t.Errorf("own name: %v, want %s", r.answers, webIP)
	}
	// TCP gives the same answer.
	if r := dig(t, "db", "+tcp", "web"); !slices.Equal(r.values("A"), []string{webIP}) {
		t.Errorf("TCP A web: %v", r.answers)
	}
	// AAAA of an IPv4-only sandbox: NODATA, not forwarded. MX: NODATA. PTR: name.network.
	if r := dig(t, "db", "AAAA", "web"); r.status != "NOERROR" || len(r.answers) != 0 || u.got("web", "AAAA") {
		t.Errorf("AAAA web: %s %v (forwarded: %v), want NOERROR, no answers, not forwarded", r.status, r.answers, u.got("web", "AAAA"))
	}
	if r := dig(t, "db", "MX", "web"); r.status != "NOERROR" || len(r.answers) != 0 || u.got("web", "MX") {
		t.Errorf("MX web: %s %v, want NOERROR and nothing", r.status, r.answers)
	}
	if r := dig(t, "db", "-x", webIP); !slices.Equal(r.values("PTR"), []string{"web.app."}) {
		t.Errorf("PTR %s: %v, want web.app.", webIP, r.answers)
	}
	// Other types for local names go upstream, and its rcode comes back.
	if r := dig(t, "db", "TXT", "web"); r.status != "NXDOMAIN" || !u.got("web", "TXT") {
		t.Errorf("TXT web: %s, forwarded %v; want the upstream's NXDOMAIN", r.status, u.got("web", "TXT"))
	}
	if u.got("web", "A") || u.got("database", "A") {
		t.Errorf("local names reached the upstream: %v", u.queries)
	}
	// The real stub resolver and ping, by name, through the generated resolv.conf.
	if out, err := inNS(t, "db", "getent", "hosts", "web"); err != nil || !strings.HasPrefix(out, webIP) {
		t.Errorf("getent hosts web: %v %q", err, out)
	}
	if out, err := inNS(t, "web", "getent", "hosts", "database"); err != nil || !strings.HasPrefix(out, dbIP) {
		t.Errorf("getent hosts database: %v %q", err, out)
	}
	if err := ping(t, "db", "web"); err != nil {
		t.Error(err)
	}
	if out, e, err := d.run("exec", "web", "--", "ping", "-c1", "-W1", "database"); err != nil {
		t.Errorf("berth exec web -- ping database: %v %s %s", err, out, e)
	}
	// berth dns query says what and why.
	out := d.must("dns", "query", "db", "database")
	if !strings.Contains(out, dbIP) || !strings.Contains(out, "app") {
		t.Errorf("berth dns query db database:\n%s", out)
	}
}

func TestDNSForwarding(t *testing.T) {
	d, u := dnsSetup(t)
	r := dig(t, "web", "test.example")
	if r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{"10.11.12.13"}) {
		t.Errorf("A test.example: %s %v, want the upstream's 10.11.12.13", r.status, r.answers)
	}
	r = dig(t, "web", "nosuch.example")
	if r.status != "NXDOMAIN" || len(r.auth) == 0 || !strings.Contains(r.auth[0], "SOA") {
		t.Errorf("A nosuch.example: %s auth %v, want NXDOMAIN with the upstream's SOA", r.status, r.auth)
	}
	// Scope: a sandbox on another network does not see web; the name goes upstream.
	d.must("network", "create", "--subnet", "10.61.0.0/24", "other")
	d.must("sandbox", "create", "--name", "x", "--network", "other")
	for _, q := range []string{"web", "web.app", "database"} {
		if r := dig(t, "x", q); r.status != "NXDOMAIN" || len(r.values("A")) != 0 || !u.got(q, "A") {
			t.Errorf("A %s from another network: %s %v, want forwarded and NXDOMAIN", q, r.status, r.answers)
		}
	}
	// resolv.conf of a user-network sandbox: 127.0.0.11, the host's search and options, ndots:0.
	out, _ := inNS(t, "web", "cat", "/etc/resolv.conf")
	for _, want := range []string{"nameserver 127.0.0.11", "search corp.example", "options edns0 ndots:0", "host(127.0.0.1)"} {
		if !strings.Contains(out, want) {
			t.Errorf("web resolv.conf lacks %q:\n%s", want, out)
		}
	}
	// A process in the sandbox may bind port 53 itself; the resolver keeps answering.
	pc, err := nsutil.ListenUDP("/run/netns/web", "0.0.0.0:53")
	if err != nil {
		t.Fatalf("bind 0.0.0.0:53 in web: %v", err)
	}
	defer pc.Close()
	l, err := nsutil.ListenTCP("/run/netns/web", "0.0.0.0:53")
	if err != nil {
		t.Fatalf("bind tcp 0.0.0.0:53 in web: %v", err)
	}
	defer l.Close()
	if r := dig(t, "web", "db"); len(r.values("A")) != 1 {
		t.Errorf("with a process on 0.0.0.0:53: A db = %v", r.answers)
	}
}

func TestDNSSharedAliasAndLinks(t *testing.T) {
	d, _ := dnsSetup(t)
	d.must("sandbox", "create", "--name", "db2", "--network", "app", "--network-alias", "shared")
	d.must("sandbox", "create", "--name", "client", "--network", "app", "--link", "db:mydb", "--link", "later:future")
	want := []string{d.ip("db", "app"), d.ip("db2", "app")}
	slices.Sort(want)
	orders := map[string]bool{}
	for i := 0; i < 12; i++ {
		r := dig(t, "web", "shared")
		got := r.values("A")
		orders[strings.Join(got, ",")] = true
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("A shared: %v, want both %v", got, want)
		}
	}
	if len(orders) < 2 {
		t.Errorf("A shared: always in the order %v in 12 answers, want shuffled", orders)
	}
	// The link alias resolves for the linking sandbox only.
	if r := dig(t, "client", "mydb"); !slices.Equal(r.values("A"), []string{d.ip("db", "app")}) {
		t.Errorf("client: A mydb = %v, want db's address", r.answers)
	}
	if r := dig(t, "web", "mydb"); len(r.values("A")) != 0 {
		t.Errorf("web: A mydb = %v, want nothing (not web's link)", r.answers)
	}
	// A link to a sandbox that does not exist yet starts resolving when it appears.
	if r := dig(t, "client", "future"); len(r.values("A")) != 0 {
		t.Errorf("dangling link answered: %v", r.answers)
	}
	d.must("sandbox", "create", "--name", "later", "--network", "app")
	if r := dig(t, "client", "future"); !slices.Equal(r.values("A"), []string{d.ip("later", "app")}) {
		t.Errorf("A future after later exists: %v", r.answers)
	}
}

// TestDNSLifecycle: names appear before create/connect returns and vanish before
// rm/disconnect/rename returns; a restart keeps resolution working.
func TestDNSLifecycle(t *testing.T) {
	d, _ := dnsSetup(t)
	d.must("network", "create", "--subnet", "10.62.0.0/24", "back")
	d.must("sandbox", "create", "--name", "api", "--network", "back")
	if r := dig(t, "web", "api"); len(r.values("A")) != 0 {
		t.Fatalf("api visible before connect: %v", r.answers)
	}
	d.must("network", "connect", "--alias", "svc", "app", "api")
	if r := dig(t, "web", "svc"); !slices.Equal(r.values("A"), []string{d.ip("api", "app")}) {
		t.Errorf("after connect: A svc = %v", r.answers)
	}
	// api now sees app's names through its new interface too.
	if r := dig(t, "api", "web"); len(r.values("A")) != 1 {
		t.Errorf("api after connect: A web = %v", r.answers)
	}
	d.must("network", "disconnect", "app", "api")
	if r := dig(t, "web", "svc"); len(r.values("A")) != 0 {
		t.Errorf("after disconnect: A svc = %v", r.answers)
	}
	d.must("sandbox", "rename", "db", "store")
	if r := dig(t, "web", "db"); len(r.values("A")) != 0 {
		t.Errorf("after rename: old name answers %v", r.answers)
	}
	if r := dig(t, "web", "store"); len(r.values("A")) != 1 {
		t.Errorf("after rename: new name = %v", r.answers)
	}
	if r := dig(t, "store", "web"); len(r.values("A")) != 1 {
		t.Errorf("renamed sandbox's own resolver: A web = %v", r.answers)
	}
	for _, how := range []string{"graceful", "kill -9"} {
		if how == "graceful" {
			d.stop()
		} else {
			d.kill()
		}
		start := time.Now()
		d.start()
		if !eventually(t, func() bool { return len(dig(t, "web", "store").values("A")) == 1 }) {
			t.Errorf("after a %s restart, web's 127.0.0.11 does not answer", how)
		}
		t.Logf("%s restart: answering again %v after start", how, time.Since(start).Round(time.Millisecond))
	}
	d.must("sandbox", "rm", "-f", "store")
	if r := dig(t, "web", "store"); len(r.values("A")) != 0 {
		t.Errorf("after rm: A store = %v", r.answers)
	}
}

// TestDNSInternalAndFailover: an internal-only sandbox never uses the host's upstreams
// (CVE-2024-29018) but still dials its own --dns from inside; SERVFAIL moves to the next
// upstream.
func TestDNSInternalAndFailover(t *testing.T) {
	d := newDaemon(t)
	host := startUpstream(t, false, "127.0.0.1:53")
	bad := startUpstream(t, true, "127.0.0.2:53")
	os.WriteFile(d.resolv, []byte("nameserver 127.0.0.2\nnameserver 127.0.0.1\n"), 0o644)
	d.start()
	d.must("network", "create", "--subnet", "10.63.0.0/24", "app")
	d.must("network", "create", "--internal", "--subnet", "10.64.0.0/24", "int")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	if r := dig(t, "web", "test.example"); r.status != "NOERROR" || !bad.got("test.example") || !host.got("test.example") {
		t.Errorf("failover: %s; bad got it %v, good got it %v", r.status, bad.got("test.example"), host.got("test.example"))
	}
	d.must("sandbox", "create", "--name", "sealed", "--network", "int")
	n := host.count() + bad.count()
	if r := dig(t, "sealed", "leak.example"); r.status != "SERVFAIL" {
		t.Errorf("internal-only: %s, want SERVFAIL", r.status)
	}
	if got := host.count() + bad.count(); got != n {
		t.Errorf("internal-only sandbox reached the host's upstreams (%d queries)", got-n)
	}
	// Its own --dns server, inside the internal network (the gateway address), is used.
	own := startUpstream(t, false, "10.64.0.1:53")
	d.must("sandbox", "create", "--name", "sealed2", "--network", "int", "--dns", "10.64.0.1")
	if r := dig(t, "sealed2", "test.example"); r.status != "NOERROR" || !own.got("test.example") {
		t.Errorf("internal-only with --dns: %s, own upstream got it %v", r.status, own.got("test.example"))
	}
	// Connecting a non-internal network re-enables forwarding; disconnecting disables it.
	d.must("network", "connect", "app", "sealed")
	if r := dig(t, "sealed", "test.example"); r.status != "NOERROR" {
		t.Errorf("after connect to app: %s, want NOERROR", r.status)
	}
	d.must("network", "disconnect", "app", "sealed")
	if r := dig(t, "sealed", "test.example"); r.status != "SERVFAIL" {
		t.Errorf("after disconnect from app: %s, want SERVFAIL", r.status)
	}
}

// TestDNSDefaultBridge: no embedded DNS on the default bridge; names only through hosts,
// legacy links included, as in Docker.
func TestDNSDefaultBridge(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("sandbox", "create", "--name", "one")
	d.must("sandbox", "create", "--name", "two", "--link", "one:onetwo")
	out, _ := inNS(t, "two", "cat", "/etc/resolv.conf")
	if strings.Contains(out, "127.0.0.11") || !strings.Contains(out, "nameserver 8.8.8.8") {
		t.Errorf("default bridge resolv.conf (host has only loopback nameservers):\n%s", out)
	}
	hosts, _ := inNS(t, "two", "cat", "/etc/hosts")
	oneIP := d.ip("one", "bridge")
	if !strings.Contains(hosts, oneIP+"\tonetwo one") {
		t.Errorf("two's hosts lacks the legacy link line for %s:\n%s", oneIP, hosts)
	}
	// ahostsv4: files answer, so the stub never asks the (unreachable) 8.8.8.8.
	if out, err := inNS(t, "two", "getent", "ahostsv4", "onetwo"); err != nil || !strings.HasPrefix(out, oneIP) {
		t.Errorf("getent ahostsv4 onetwo: %v %q", err, out)
	}
	// Peers on the default bridge are not written into each other's hosts files.
	if hosts, _ := inNS(t, "one", "cat", "/etc/hosts"); strings.Contains(hosts, "two") {
		t.Errorf("one's hosts names two:\n%s", hosts)
	}
	// No resolver listens on 127.0.0.11 there.
	if out, err := inNS(t, "one", "dig", "@127.0.0.11", "+tries=1", "+time=1", "two"); err == nil && strings.Contains(out, "status: NOERROR") {
		t.Errorf("127.0.0.11 answered on the default bridge:\n%s", out)
	}
}

// TestDNSDebugLevel: at --log-level debug every query leaves the UDP fast path for the
// general handler, which logs it; the answers are the same as the fast path's (the rest of
// the suite runs at the default level) and each query is logged with its source.
func TestDNSDebugLevel(t *testing.T) {
	d, u := dnsSetupAt(t, true)
	webIP := d.ip("web", "app")
	checks := []struct {
		args   []string
		status string
		want   []string // A answers
	}{
		{[]string{"web"}, "NOERROR", []string{webIP}},
		{[]string{"+noedns", "database"}, "NOERROR", []string{d.ip("db", "app")}},
		{[]string{"AAAA", "web"}, "NOERROR", nil},
		{[]string{"test.example"}, "NOERROR", []string{"10.11.12.13"}},
		{[]string{"nosuch.example"}, "NXDOMAIN", nil},
		{[]string{"+tcp", "web"}, "NOERROR", []string{webIP}},
	}
	for _, c := range checks {
		r := dig(t, "db", c.args...)
		if r.status != c.status || !slices.Equal(r.values("A"), c.want) || !r.flag("ra") {
			t.Errorf("dig %v: %s %v flags %v, want %s %v with ra", c.args, r.status, r.values("A"), r.flags, c.status, c.want)
		}
	}
	if !u.got("test.example", "A") {
		t.Errorf("test.example was not forwarded")
	}
	if r := dig(t, "db", "-x", webIP); len(r.answers) != 1 || !strings.HasSuffix(r.answers[0], "web.app.") {
		t.Errorf("PTR %s: %v, want web.app.", webIP, r.answers)
	}
	log := d.log.String()
	for _, want := range []string{`msg=query`, `qname=web.`, `source="local: network app, name"`, `source="upstream 127.0.0.1:53 (host netns)"`, `rcode=NXDOMAIN`} {
		if !strings.Contains(log, want) {
			t.Errorf("debug log has no %s", want)
		}
	}
}
