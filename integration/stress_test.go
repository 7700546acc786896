package integration

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/nsutil"
)

// TestStress is a bounded load: queries (local, forwarded, malformed, over UDP and TCP,
// idle and slow TCP clients) from inside sandboxes while sandboxes come and go. Afterwards
// the daemon's goroutines and fds must be back near their baseline. BERTH_STRESS sets the
// duration (`make stress` runs 60s); the default keeps CI short.
func TestStress(t *testing.T) {
	dur := 3 * time.Second
	if v := os.Getenv("BERTH_STRESS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BERTH_STRESS=%q: %v", v, err)
		}
		dur = d
	}
	d, _ := dnsSetup(t)
	for i := 0; i < 4; i++ {
		d.must("sandbox", "create", "--name", fmt.Sprintf("s%d", i), "--network", "app")
	}
	time.Sleep(300 * time.Millisecond)
	before := d.procStats(t)

	var queries, answered, churned atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(ns string) {
			defer wg.Done()
			queryLoop(ns, stop, &queries, &answered)
		}(fmt.Sprintf("/run/netns/s%d", i))
	}
	wg.Add(1)
	go func() { // churn: create and remove sandboxes the whole time
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("churn%d", i)
			if _, _, err := d.run("sandbox", "create", "--name", name, "--network", "app", "--network-alias", "shared"); err == nil {
				d.run("sandbox", "rm", "-f", name)
				churned.Add(1)
			}
		}
	}()
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	time.Sleep(time.Second) // in-flight forwards and TCP idle timeouts are shorter than this... mostly
	after := d.waitBaseline(t, before, 10*time.Second)
	t.Logf("%v of load: %d queries (%d answered), %d sandboxes created and removed", dur, queries.Load(), answered.Load(), churned.Load())
	t.Logf("daemon before: %s", before)
	t.Logf("daemon after:  %s", after)
	if r := dig(t, "web", "db"); len(r.values("A")) != 1 {
		t.Errorf("after the load the resolver does not answer: %v", r.raw)
	}
}

type procStats struct{ goroutines, fds, rssKB int }

func (p procStats) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d KiB RSS", p.goroutines, p.fds, p.rssKB)
}

var goroutinesRE = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

func (d *daemon) procStats(t *testing.T) procStats {
	t.Helper()
	var p procStats
	if m := goroutinesRE.FindStringSubmatch(d.scrape(t)); m != nil {
		p.goroutines, _ = strconv.Atoi(m[1])
	}
	pid := d.cmd.Process.Pid
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	p.fds = len(fds)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		if m := regexp.MustCompile(`VmRSS:\s+(\d+)`).FindSubmatch(b); m != nil {
			p.rssKB, _ = strconv.Atoi(string(m[1]))
		}
	}
	return p
}

// waitBaseline waits until goroutines and fds are back within a small margin of base
// (TCP idle timeouts and the HTTP client's keep-alives take a moment) and fails if not.
func (d *daemon) waitBaseline(t *testing.T, base procStats, within time.Duration) procStats {
	t.Helper()
	const slack = 5
	deadline := time.Now().Add(within)
	for {
		p := d.procStats(t)
		if p.goroutines <= base.goroutines+slack && p.fds <= base.fds+slack {
			return p
		}
		if time.Now().After(deadline) {
			t.Errorf("after the load: %s; baseline %s (leak?)", p, base)
			return p
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// queryLoop sends a mix of queries from inside nsPath until stop closes.
func queryLoop(nsPath string, stop chan struct{}, queries, answered *atomic.Int64) {
	var conn *net.UDPConn
	err := nsutil.Do(nsPath, func() error {
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53})
		conn = c
		return err
	})
	if err != nil {
		return
	}
	defer conn.Close()
	names := []string{"web.", "db.", "database.", "shared.", "nosuch.example.", "test.example."}
	buf := make([]byte, 4096)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var pkt []byte
		switch i % 10 {
		case 7: // malformed: truncated header, garbage, a response
			pkt = [][]byte{{0x12}, []byte("garbage garbage garbage"), {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}}[rand.IntN(3)]
		case 8: // a slow TCP client that never finishes its length prefix
			nsutil.Do(nsPath, func() error {
				c, err := net.DialTimeout("tcp", "127.0.0.11:53", 200*time.Millisecond)
				if err == nil {
					c.Write([]byte{0})
					go func() { time.Sleep(300 * time.Millisecond); c.Close() }()
				}
				return nil
			})
			continue
		default:
			m := new(dns.Msg)
			m.SetQuestion(names[rand.IntN(len(names))], []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX}[rand.IntN(3)])
			pkt, _ = m.Pack()
		}
		queries.Add(1)
		conn.Write(pkt)
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := conn.Read(buf); err == nil {
			answered.Add(1)
		}
	}
}
