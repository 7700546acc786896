package integration

import (
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/nsutil"
)

// TestBenchMultihost measures issue 16's numbers on the three-host rig: create on A to
// answer on C, 3 x 100 concurrent creates, ping RTT and TCP throughput across VXLAN against
// one bridge. It is a benchmark, not a test: it asserts no timing, and runs only under
// BERTH_BENCH=1 (make bench-multihost), printing its results as "bench\t..." lines.
func TestBenchMultihost(t *testing.T) {
	if os.Getenv("BERTH_BENCH") == "" {
		t.Skip("a benchmark: make bench-multihost runs it (BERTH_BENCH=1)")
	}
	r := overlayRig(t, 3)
	a, b, c := r.hosts[0], r.hosts[1], r.hosts[2]
	id := strings.TrimSpace(a.must("network", "create", "-d", "overlay", "--subnet", "10.20.0.0/16", "ov"))
	b.waitNetwork("ov", id)
	c.waitNetwork("ov", id)
	c.must("sandbox", "create", "--name", "q", "--network", "ov")
	report := func(format string, args ...any) { fmt.Printf("bench\t"+format+"\n", args...) }

	// 1. Create on A to answer on C: from the start of `sandbox create` on A until q's
	// 127.0.0.11 on C answers the name (the CLI's own run included).
	conn := udpIn(t, c.nsPath("q"), "127.0.0.11:53")
	var total, after []time.Duration
	const creates = 60
	for i := range creates {
		name := fmt.Sprintf("w%d", i)
		t0 := time.Now()
		a.must("sandbox", "create", "--name", name, "--network", "ov")
		t1 := time.Now()
		for !answers(conn, name) {
			if time.Since(t0) > 10*time.Second {
				t.Fatalf("%s never answered on C", name)
			}
			time.Sleep(time.Millisecond)
		}
		total = append(total, time.Since(t0))
		after = append(after, time.Since(t1))
	}
	report("create on A to answer on C (%d creates): p50 %v p99 %v; from the create's return: p50 %v p99 %v",
		creates, pct(total, 50), pct(total, 99), pct(after, 50), pct(after, 99))

	// 2. 3 hosts x 100 concurrent creates.
	t0 := time.Now()
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	for _, h := range r.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := h.createMany("c"+strings.ToLower(h.name), "ov", 100)
			mu.Lock()
			errs = append(errs, e...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	for _, err := range errs {
		t.Error(err)
	}
	owner := map[string]string{}
	dups := 0
	for _, h := range r.hosts {
		for name, ip := range h.addresses("ov") {
			if _, dup := owner[ip]; dup {
				dups++
			}
			owner[ip] = h.name + "/" + name
		}
	}
	report("3 hosts x 100 concurrent creates: %v, %.1f creates/s, %d failed, %d duplicate addresses among %d",
		el.Round(time.Millisecond), 300/el.Seconds(), len(errs), dups, len(owner))

	// 3. ping RTT and TCP throughput: q on C to w0 on A over VXLAN, against two sandboxes
	// on one bridge network of A.
	a.must("network", "create", "local")
	a.must("sandbox", "create", "--name", "l1", "--network", "local")
	a.must("sandbox", "create", "--name", "l2", "--network", "local")
	w0 := a.cli.inspectSandbox("w0").Networks["ov"].IPAddress
	l2 := a.cli.inspectSandbox("l2").Networks["local"].IPAddress
	for _, p := range []struct {
		what, sb string
		h        *host
		to       string
		listenNS string
	}{
		{"across VXLAN (C -> A)", "q", c, w0, a.nsPath("w0")},
		{"on one bridge (A)", "l1", a, l2, a.nsPath("l2")},
	} {
		p.h.waitPing(p.sb, p.to)
		out, _ := p.h.exec("ip", "netns", "exec", p.sb, "ping", "-c", "20", "-i", "0.2", "-q", p.to)
		rtt := regexp.MustCompile(`= [0-9.]+/([0-9.]+)/`).FindStringSubmatch(out)
		if rtt == nil {
			t.Fatalf("ping %s: %s", p.what, out)
		}
		mbps := throughput(t, p.listenNS, p.h.nsPath(p.sb), p.to)
		report("%s: ping avg RTT %s ms (20 echoes); TCP %.0f Mbit/s (one stream, 5 s)", p.what, rtt[1], mbps)
	}
}

// udpIn returns a UDP socket connected to addr, made inside the netns at nsPath.
func udpIn(t *testing.T, nsPath, addr string) *dns.Conn {
	t.Helper()
	var c net.Conn
	err := nsutil.Do(nsPath, func() error {
		var err error
		c, err = net.Dial("udp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dns.Conn{Conn: c}
}

// answers reports whether an A query for name gets an answer within 50 ms.
func answers(c *dns.Conn, name string) bool {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeA)
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if err := c.WriteMsg(m); err != nil {
		return false
	}
	for {
		r, err := c.ReadMsg()
		if err != nil {
			return false
		}
		if r.Id == m.Id {
			return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
		}
	}
}

// throughput sends bytes for 5 s from the netns at fromNS to a sink listening in toNS on
// addr, and returns Mbit/s.
func throughput(t *testing.T, toNS, fromNS, addr string) float64 {
	t.Helper()
	var ln net.Listener
	if err := nsutil.Do(toNS, func() error {
		var err error
		ln, err = net.Listen("tcp", ":5201")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	c, err := dialIn(fromNS, addr+":5201")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	t0 := time.Now()
	for time.Since(t0) < 5*time.Second {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	n := <-got
	return float64(n) * 8 / time.Since(t0).Seconds() / 1e6
}

// pct returns the p-th percentile of ds (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)].Round(100 * time.Microsecond)
}
