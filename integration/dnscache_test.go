package integration

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric returns the value of the sample line that starts with name (with its labels), or
// -1 when there is none.
func metric(m, name string) float64 {
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestDNSCache: the daemon's forward cache, end to end: one upstream query for many dig
// and getent lookups, the TTL counting down, `berth dns query` saying so, the metrics,
// the host's resolv.conf changing (the old upstream's entries flushed), and
// --dns-cache-size 0 forwarding every query as before.
func TestDNSCache(t *testing.T) {
	d := newDaemon(t)
	u := startUpstream(t, false, "127.0.0.1:53")
	u2 := startUpstream(t, false, "127.0.0.2:53")
	d.start()
	d.must("network", "create", "--subnet", "10.61.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	d.must("sandbox", "create", "--name", "db", "--network", "app")

	first := dig(t, "web", "test.example")
	if !contains(first.values("A"), "10.11.12.13") {
		t.Fatalf("dig test.example: %s", first.raw)
	}
	time.Sleep(1100 * time.Millisecond) // one whole second of age
	for _, sb := range []string{"web", "db", "web", "db"} {
		r := dig(t, sb, "test.example")
		f := strings.Fields(r.answers[0])
		if ttl, _ := strconv.Atoi(f[1]); ttl >= 600 || ttl < 590 {
			t.Errorf("dig in %s: TTL %s, want 599 or a little less (counting down from the upstream's 600)", sb, f[1])
		}
	}
	if out, err := inNS(t, "db", "getent", "hosts", "test.example"); err != nil || !strings.Contains(out, "10.11.12.13") {
		t.Errorf("getent hosts test.example: %v %s", err, out)
	}
	// dig sends EDNS, glibc does not: two keys, so at most two A queries upstream (glibc's
	// AAAA is a third question).
	var a int
	u.mu.Lock()
	for _, q := range u.queries {
		if q == "test.example. A" {
			a++
		}
	}
	u.mu.Unlock()
	if a > 2 {
		t.Errorf("upstream got %d A queries for test.example for 6 lookups; want 1 (dig) + 1 (getent)", a)
	}

	out := d.must("dns", "query", "web", "test.example")
	if !regexp.MustCompile(`answered by: cache: upstream 127\.0\.0\.1:53 \(host netns\), 5\d\ds left`).MatchString(out) {
		t.Errorf("berth dns query: %s", out)
	}
	if out := d.must("dns", "query", "web", "test.example", "--format", "{{.Cached}} {{.CacheTTL}}"); !regexp.MustCompile(`^true 5\d\d$`).MatchString(out) {
		t.Errorf("berth dns query --format: %q", out)
	}
	m := d.scrape(t)
	if h := metric(m, "berth_dns_cache_hits_total"); h < 5 {
		t.Errorf("berth_dns_cache_hits_total %v, want >= 5:\n%s", h, m)
	}
	if e := metric(m, "berth_dns_cache_entries"); e < 1 {
		t.Errorf("berth_dns_cache_entries %v", e)
	}

	// The host's resolv.conf names another server: its answers, not the old ones', also
	// after it names the old one again (the old entries went with the change).
	nxCount := func(up *upstream) int {
		n := 0
		up.mu.Lock()
		defer up.mu.Unlock()
		for _, q := range up.queries {
			if q == "nosuch.example. A" {
				n++
			}
		}
		return n
	}
	dig(t, "web", "nosuch.example")
	if err := os.WriteFile(d.resolv, []byte("nameserver 127.0.0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new upstream", func() error {
		if dig(t, "web", "nosuch.example"); nxCount(u2) == 0 {
			return errors.New("127.0.0.2 not asked")
		}
		return nil
	})
	if err := os.WriteFile(d.resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := nxCount(u)
	waitFor(t, 5*time.Second, "the old upstream again", func() error {
		if dig(t, "web", "nosuch.example"); nxCount(u) == before {
			return errors.New("127.0.0.1 not asked again")
		}
		return nil
	})

	// Off: every query goes upstream, and the cache's metrics are gone.
	d.stop()
	d.start("--dns-cache-size", "0")
	n := u.count()
	for range 3 {
		dig(t, "web", "test.example")
	}
	if got := u.count() - n; got != 3 {
		t.Errorf("--dns-cache-size 0: upstream got %d queries for 3 digs, want 3", got)
	}
	if m := d.scrape(t); strings.Contains(m, "berth_dns_cache_") {
		t.Errorf("--dns-cache-size 0: /metrics has cache families")
	}
	d.fails("invalid dns-cache-memory", "daemon", "--dns-cache-memory", "lots", "--root", t.TempDir())
}
