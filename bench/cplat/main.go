// Command cplat measures berth's control plane through its HTTP API on the unix socket.
//
//	cplat -mode lat   -n 200  -network NET   # create+rm one sandbox n times: p50/p99
//	cplat -mode bulk  -n 1000 -network NET   # create n sandboxes bulk0..: total time
//	cplat -mode rm    -n 1000                # remove bulk0..: total time
//	cplat -mode probe -n 1000 -timeout 30s   # time until 127.0.0.11 answers in every bulkN netns
//	cplat -mode prop  -n 200  -network NET   # stale or missing answers in netns client after each call
//
//	cplat -mode ctflush                      # flush conntrack in this netns and every /run/netns one
//
// With -ready, probe first opens its sockets, prints "ready" and waits for a line on stdin
// before it starts the clock and asks: the caller (re)starts the daemon in between, so
// the probe's own setup is not counted and does not compete with the daemon for the CPUs.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"berth/api"
	"berth/internal/nsutil"
)

var client *http.Client

func main() {
	mode := flag.String("mode", "lat", "lat, bulk, rm, probe, prop or ctflush")
	n := flag.Int("n", 200, "how many")
	socket := flag.String("socket", "/run/berth/berth.sock", "daemon API socket")
	network := flag.String("network", "benchnet", "network for new sandboxes")
	timeout := flag.Duration("timeout", 60*time.Second, "probe: give up after")
	ready := flag.Bool("ready", false, "probe: open the sockets, print ready, wait for a line on stdin, then probe")
	flag.Parse()
	client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", *socket)
	}}}
	switch *mode {
	case "lat":
		var create, rm, both []time.Duration
		for i := range *n {
			name := fmt.Sprintf("lat%d", i)
			t0 := time.Now()
			must(call("POST", "/v1/sandboxes", fmt.Sprintf(`{"Name":%q,"Networks":[%q]}`, name, *network)))
			t1 := time.Now()
			must(call("DELETE", "/v1/sandboxes/"+name+"?force=1", ""))
			t2 := time.Now()
			create, rm, both = append(create, t1.Sub(t0)), append(rm, t2.Sub(t1)), append(both, t2.Sub(t0))
		}
		fmt.Printf("api create p50 %s p99 %s; rm p50 %s p99 %s; create+rm p50 %s p99 %s (n=%d)\n",
			pct(create, 50), pct(create, 99), pct(rm, 50), pct(rm, 99), pct(both, 50), pct(both, 99), *n)
	case "bulk":
		t0 := time.Now()
		for i := range *n {
			must(call("POST", "/v1/sandboxes", fmt.Sprintf(`{"Name":"bulk%d","Networks":[%q]}`, i, *network)))
		}
		fmt.Printf("api created %d sandboxes in %s\n", *n, time.Since(t0).Round(time.Millisecond))
	case "rm":
		t0 := time.Now()
		for i := range *n {
			must(call("DELETE", fmt.Sprintf("/v1/sandboxes/bulk%d?force=1", i), ""))
		}
		fmt.Printf("api removed %d sandboxes in %s\n", *n, time.Since(t0).Round(time.Millisecond))
	case "probe":
		probe(*n, *timeout, *ready)
	case "prop":
		propagation(*n, *network)
	case "ctflush":
		ctflush()
	}
}

func call(method, path, body string) error {
	return callInto(method, path, body, nil)
}

// callInto is call that decodes the reply's JSON body into v (unless v is nil).
func callInto(method, path, body string, v any) error {
	req, err := http.NewRequest(method, "http://berth"+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return s[max(i, 0)].Round(10 * time.Microsecond)
}

// probeWorkers is how many sandboxes probe asks at once. Few: every unanswered query costs
// the kernel an ICMP error and the probe a retry, CPU the restarting daemon needs.
const probeWorkers = 16

// probe opens a UDP socket to 127.0.0.11:53 inside each /run/netns/bulkN and asks for the
// sandbox's own name until it answers; it prints when the last one did.
func probe(n int, timeout time.Duration, ready bool) {
	conns, err := dialBulk(n)
	if err != nil {
		log.Fatal(err)
	}
	if ready {
		fmt.Println("ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			log.Fatalf("probe: waiting for the go line: %v", err)
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last time.Duration
	failed := 0
	work := make(chan int)
	for range probeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("bulk%d", i)
				ok := ask(conns[i], name, t0.Add(timeout))
				mu.Lock()
				if !ok {
					failed++
					log.Printf("probe: %s did not answer", name)
				}
				last = max(last, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	fmt.Printf("probe: %d of %d sandboxes answering after %s\n", n-failed, n, last.Round(time.Millisecond))
}

func ask(c net.Conn, name string, deadline time.Time) bool {
	defer c.Close()
	q := query(name)
	buf := make([]byte, 512)
	for time.Now().Before(deadline) {
		c.Write(q)
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && n >= 12 && binary.BigEndian.Uint16(buf[6:]) > 0 {
			return true
		}
		if err != nil && !os.IsTimeout(err) {
			time.Sleep(10 * time.Millisecond) // refused: nobody listening yet
		}
	}
	return false
}

// dialBulk creates a connected UDP socket to 127.0.0.11:53 inside each /run/netns/bulkN.
func dialBulk(n int) ([]net.Conn, error) {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("/run/netns/bulk%d", i)
	}
	return dialNetNS(paths...)
}

// dialNetNS creates a connected UDP socket to 127.0.0.11:53 inside each netns of paths.
func dialNetNS(paths ...string) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, len(paths))
	for _, path := range paths {
		err := nsutil.Do(path, func() error {
			c, err := net.Dial("udp", "127.0.0.11:53")
			if err == nil {
				conns = append(conns, c)
			}
			return err
		})
		if err != nil {
			return conns, fmt.Errorf("%s: %w", path, err)
		}
	}
	return conns, nil
}

// ctflush deletes every conntrack entry in the current netns and in each netns pinned
// under /run/netns, and prints how many there were. The benchmark runs it between its DNS
// and control-plane phases: the DNS phases leave ~10^5 UDP entries (every forwarded query
// has a fresh source port, dnsperf's too) for 30 s, and every netns or veth deleted while
// they last walks them in the kernel, which the control-plane numbers would then include.
func ctflush() {
	paths := []string{""}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		paths = append(paths, "/run/netns/"+e.Name())
	}
	total := 0
	for _, p := range paths {
		err := nsutil.Do(p, func() error {
			b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
			if err != nil {
				return nil // no conntrack here
			}
			n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			total += n
			if n > 0 {
				return netlink.ConntrackTableFlush(netlink.ConntrackTable)
			}
			return nil
		})
		if err != nil {
			log.Fatalf("ctflush %s: %v", p, err)
		}
	}
	fmt.Printf("conntrack: flushed %d entries in %d netns\n", total, len(paths))
}

// propAlias is the network alias every sandbox of the propagation loop carries, one at a
// time: shared names must appear and vanish with the API call too.
const propAlias = "propsvc"

// propagation creates and removes n sandboxes, one at a time, each with propAlias, and
// after every call returns asks 127.0.0.11 in the client sandbox for the sandbox's name
// and the alias: after a create both must answer its address (else missing), after a rm
// neither may (else stale; the forwarded answer of the bench's upstream, 10.9.9.9, is the
// expected one then). Meanwhile a second socket in the same netns asks for the alias
// without pause, so the checked answers race with a querying peer.
func propagation(n int, network string) {
	conns, err := dialNetNS("/run/netns/client", "/run/netns/client")
	if err != nil {
		log.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var background int
	wg.Add(1)
	go func() {
		defer wg.Done()
		q, buf := query(propAlias), make([]byte, 512)
		for {
			select {
			case <-stop:
				return
			default:
			}
			conns[1].Write(q)
			conns[1].SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conns[1].Read(buf); err == nil {
				background++
			}
		}
	}()
	missing, stale, checked := 0, 0, 0
	for i := range n {
		name := fmt.Sprintf("prop%d", i)
		must(call("POST", "/v1/sandboxes", fmt.Sprintf(`{"Name":%q,"Networks":[%q],"Aliases":[%q]}`, name, network, propAlias)))
		got := [][]string{askA(conns[0], name), askA(conns[0], propAlias)}
		// The address it got, asked only after the answers so as not to give them time.
		var sb api.Sandbox
		must(callInto("GET", "/v1/sandboxes/"+name, "", &sb))
		ip := sb.Networks[network].IPAddress
		for j, q := range []string{name, propAlias} {
			checked++
			if !slices.Contains(got[j], ip) || ip == "" {
				missing++
				log.Printf("prop: %s: %v after create, want %q", q, got[j], ip)
			}
		}
		must(call("DELETE", "/v1/sandboxes/"+name+"?force=1", ""))
		for _, q := range []string{name, propAlias} {
			checked++
			if addrs := askA(conns[0], q); slices.ContainsFunc(addrs, func(a string) bool { return a != "10.9.9.9" }) {
				stale++
				log.Printf("prop: %s: %v after rm, want none or the upstream's 10.9.9.9", q, addrs)
			}
		}
	}
	close(stop)
	wg.Wait()
	fmt.Printf("propagation: %d creates and %d removals, %d answers checked: %d missing, %d stale (a peer asked %d times meanwhile)\n",
		n, n, checked, missing, stale, background)
}

// askA sends an A query for name on c and returns the addresses of the answer's A records
// (nil if none came within a second).
func askA(c net.Conn, name string) []string {
	id := uint16(rand.Uint32())
	q := query(name)
	binary.BigEndian.PutUint16(q, id)
	c.Write(q)
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		if n < 12 || binary.BigEndian.Uint16(buf) != id {
			continue // a late reply to an earlier query
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) != nil {
			return nil
		}
		var addrs []string
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok {
				addrs = append(addrs, a.A.String())
			}
		}
		return addrs
	}
}

func query(name string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	start := 0
	name += "."
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, name[start:i]...)
			start = i + 1
		}
	}
	return append(b, 0, 0, 1, 0, 1)
}
