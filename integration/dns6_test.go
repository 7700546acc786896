package integration

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// dns6Addr is the embedded DNS's IPv6 address (resolver.EmbeddedNS6), as users see it.
const dns6Addr = "fd62:6572:7468::11"

// dig6 is dig at [fd62:6572:7468::11] inside a sandbox.
func dig6(t *testing.T, ns string, args ...string) digResult {
	t.Helper()
	return dig(t, ns, append([]string{"@" + dns6Addr}, args...)...)
}

// buildLookup6 builds testdata/lookup6 (Go's own resolver) into the test's temp dir.
func buildLookup6(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lookup6")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/lookup6")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build lookup6: %v\n%s", err, out)
	}
	return bin
}

// TestDNS6 is issue 18 item 2 on the real kernel: sandboxes of an IPv6-only network get
// the embedded DNS on fd62:6572:7468::11 and that address alone in their resolv.conf;
// dig (UDP and TCP), glibc's getent and Go's own resolver find each other there; names
// the resolver does not own are forwarded (to the host's nameserver, and to a --dns
// server on the network's IPv6 gateway); a dual-stack sandbox answers on both addresses
// and keeps 127.0.0.11 in its resolv.conf. All of it again after a restart and after
// kill -9.
func TestDNS6(t *testing.T) {
	d := newDaemon(t)
	u := startUpstream(t, false, "127.0.0.1:53") // the host's nameserver (d.resolv)
	d.start()
	lookup6 := buildLookup6(t)
	d.fails(`invalid subnet "fd62:6572:7468::/64": overlaps berth's embedded DNS address fd62:6572:7468::11`,
		"network", "create", "--ipv4=false", "--ipv6", "--subnet", "fd62:6572:7468::/64", "bad")
	id := d.must("network", "create", "--ipv4=false", "--ipv6", "--subnet", "fd42:18::/64", "v6")
	d.must("sandbox", "create", "--name", "a", "--network", "v6")
	d.must("sandbox", "create", "--name", "b", "--network", "v6")
	d.must("network", "create", "--ipv6", "--subnet", "10.78.0.0/24", "--subnet", "fd42:78::/64", "dual")
	d.must("sandbox", "create", "--name", "c", "--network", "dual")

	// A --dns server inside the sandbox's reach: on the IPv6-only network's gateway, in the
	// test's netns (the bridge's side). The address is usable once DAD is done, which
	// needs carrier: a sandbox on the bridge.
	br := "br-" + id[:12]
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("ip", "-6", "addr", "show", "dev", br).CombinedOutput()
		if strings.Contains(string(out), "fd42:18::1/64") && !strings.Contains(string(out), "tentative") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fd42:18::1 on %s stays tentative for 5s:\n%s", br, out)
		}
	}
	gw := startUpstream(t, false, "[fd42:18::1]:53")
	d.must("sandbox", "create", "--name", "f", "--network", "v6", "--dns", "fd42:18::1")

	bIP := d.inspectSandbox("b").Networks["v6"].GlobalIPv6Address
	if bIP == "" {
		t.Fatalf("b has no IPv6 address: %+v", d.inspectSandbox("b").Networks)
	}
	cIP4, cIP6 := d.ip("c", "dual"), d.inspectSandbox("c").Networks["dual"].GlobalIPv6Address

	check := func(when string) {
		t.Helper()
		// The daemon may still be bringing the servers back (restart): wait for the first.
		eventually(t, func() bool { return dig6(t, "a", "AAAA", "b").status == "NOERROR" })
		out, _ := inNS(t, "a", "cat", "/etc/resolv.conf")
		var ns []string
		for l := range strings.Lines(out) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "nameserver "); ok {
				ns = append(ns, v)
			}
		}
		if !slices.Equal(ns, []string{dns6Addr}) {
			t.Errorf("%s: resolv.conf of a names %v; want %s only:\n%s", when, ns, dns6Addr, out)
		}
		for _, proto := range []string{"+notcp", "+tcp"} {
			if r := dig6(t, "a", proto, "AAAA", "b"); r.status != "NOERROR" || !slices.Equal(r.values("AAAA"), []string{bIP}) {
				t.Errorf("%s: dig @%s %s AAAA b: %s %v; want %s\n%s", when, dns6Addr, proto, r.status, r.answers, bIP, r.raw)
			}
			if r := dig6(t, "a", proto, "A", "b"); r.status != "NOERROR" || len(r.answers) != 0 {
				t.Errorf("%s: dig @%s %s A b: %s %v; want NOERROR, no answer\n%s", when, dns6Addr, proto, r.status, r.answers, r.raw)
			}
		}
		if out, err := inNS(t, "a", "getent", "ahosts", "b"); err != nil || !strings.Contains(out, bIP) {
			t.Errorf("%s: getent ahosts b in a: %v %q; want %s", when, err, out, bIP)
		}
		if out, err := inNS(t, "a", lookup6, "b"); err != nil || strings.TrimSpace(out) != "b "+bIP {
			t.Errorf("%s: Go resolver in a: %v %q; want b %s", when, err, out, bIP)
		}
		// Forwarded: to the host's nameserver (dialled from the daemon's netns) ...
		if r := dig6(t, "a", "test.example"); r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{"10.11.12.13"}) {
			t.Errorf("%s: dig @%s test.example in a: %s %v; want the host upstream's 10.11.12.13\n%s", when, dns6Addr, r.status, r.answers, r.raw)
		}
		if r := dig6(t, "a", "+tcp", "test.example"); r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{"10.11.12.13"}) {
			t.Errorf("%s: dig @%s +tcp test.example in a: %s %v\n%s", when, dns6Addr, r.status, r.answers, r.raw)
		}
		// ... and to f's --dns on the gateway, over IPv6 from inside f.
		n := gw.count()
		if r := dig6(t, "f", "test.example"); r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{"10.11.12.13"}) || gw.count() != n+1 {
			t.Errorf("%s: dig @%s test.example in f: %s %v, gateway upstream saw %d; want 10.11.12.13 from it\n%s",
				when, dns6Addr, r.status, r.answers, gw.count()-n, r.raw)
		}
		if out, err := inNS(t, "f", lookup6, "test.example"); err != nil || strings.TrimSpace(out) != "test.example 10.11.12.13" {
			t.Errorf("%s: Go resolver in f, forwarded: %v %q", when, err, out)
		}
		// A dual-stack sandbox: both addresses answer; its resolv.conf keeps 127.0.0.11.
		for _, r := range []digResult{dig(t, "c", "A", "c"), dig6(t, "c", "A", "c"), dig6(t, "c", "+tcp", "A", "c")} {
			if r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{cIP4}) {
				t.Errorf("%s: dig A c in c: %s %v; want %s\n%s", when, r.status, r.answers, cIP4, r.raw)
			}
		}
		if r := dig6(t, "c", "AAAA", "c"); !slices.Equal(r.values("AAAA"), []string{cIP6}) {
			t.Errorf("%s: dig @%s AAAA c in c: %v; want %s", when, dns6Addr, r.answers, cIP6)
		}
		if out, _ := inNS(t, "c", "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 127.0.0.11\n") || strings.Contains(out, dns6Addr) {
			t.Errorf("%s: resolv.conf of c:\n%s\nwant nameserver 127.0.0.11 only", when, out)
		}
	}
	check("first start")
	if !u.got("test.example", "A") {
		t.Error("the host upstream saw no query for test.example")
	}

	// a joins the dual-stack network: it has IPv4 now, so 127.0.0.11; and back.
	resolvOf := func(ns string) string { out, _ := inNS(t, ns, "cat", "/etc/resolv.conf"); return out }
	d.must("network", "connect", "dual", "a")
	if out := resolvOf("a"); !strings.Contains(out, "nameserver 127.0.0.11\n") || strings.Contains(out, dns6Addr) {
		t.Errorf("resolv.conf of a on dual too:\n%s\nwant nameserver 127.0.0.11", out)
	}
	d.must("network", "disconnect", "dual", "a")
	if out := resolvOf("a"); !strings.Contains(out, "nameserver "+dns6Addr+"\n") || strings.Contains(out, "127.0.0.11") {
		t.Errorf("resolv.conf of a after leaving dual:\n%s\nwant nameserver %s", out, dns6Addr)
	}

	// Both tables in each sandbox, kept across a restart unchanged.
	tables := func() string {
		out, _ := inNS(t, "a", "nft", "list", "tables")
		rules, _ := inNS(t, "a", "nft", "list", "ruleset")
		return out + rules
	}
	before := tables()
	if !strings.Contains(before, "table ip berth-dns") || !strings.Contains(before, "table ip6 berth-dns") {
		t.Errorf("tables in a:\n%s\nwant ip and ip6 berth-dns", before)
	}
	d.stop()
	d.start()
	check("after a restart")
	if got := tables(); got != before {
		t.Errorf("tables in a changed across a restart:\n%s\nwant\n%s", got, before)
	}
	d.kill()
	d.start()
	check("after kill -9")
	if got := tables(); got != before {
		t.Errorf("tables in a changed across kill -9:\n%s\nwant\n%s", got, before)
	}
}
