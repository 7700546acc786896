// Command fwscale measures how berth's network creates and port publishing scale (issue
// 14.1): against a running daemon, through its HTTP API on the unix socket, it creates
// -networks bridge networks with explicit subnets, then -ports published ports
// (-per to a sandbox, the sandboxes spread over the networks), timing every call, and
// counts berth's nftables rules and set elements in this netns at each checkpoint. It
// prints the curve as a markdown section. Run it only in a private netns (bench/scale.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"slices"
	"time"

	"github.com/google/nftables"

	"berth/api"
	"berth/api/client"
)

var (
	daemon *client.Client
	ctx    = context.Background()
)

func main() {
	socket := flag.String("socket", "/run/berth/berth.sock", "daemon API socket")
	networks := flag.Int("networks", 1000, "bridge networks to create")
	ports := flag.Int("ports", 5000, "published ports to create")
	per := flag.Int("per", 10, "published ports per sandbox")
	flag.Parse()
	var err error
	if daemon, err = client.New("unix://" + *socket); err != nil {
		log.Fatal(err)
	}

	netCheck := checkpoints(*networks, 1, 10, 100, 500, 1000)
	var netTimes []time.Duration
	netCounts := map[int][2]int{}
	for i := range *networks {
		req := api.NetworkCreate{Name: fmt.Sprintf("scale%d", i), Subnets: []string{subnet(i)}}
		netTimes = append(netTimes, timed(func() error { return createNetwork(req) }))
		if n := i + 1; netCheck[n] {
			netCounts[n] = count()
		}
	}

	sandboxes := *ports / *per
	portCheck := map[int]bool{}
	for _, p := range []int{1, 100, 1000, 5000, *ports} {
		if p <= *ports {
			portCheck[(p+*per-1) / *per] = true // the sandbox that publishes port p
		}
	}
	var sbTimes []time.Duration
	sbCounts := map[int][2]int{}
	for s := range sandboxes {
		req := api.SandboxCreate{Name: fmt.Sprintf("scalesb%d", s), Networks: []string{fmt.Sprintf("scale%d", s%*networks)}}
		for p := range *per {
			req.Publish = append(req.Publish, fmt.Sprintf("%d:80", 10000+s**per+p))
		}
		sbTimes = append(sbTimes, timed(func() error { return createSandbox(req) }))
		if n := s + 1; portCheck[n] {
			sbCounts[n] = count()
		}
	}

	// One more network, and one sandbox without ports, next to everything: a create costs
	// what it did with nothing there.
	extraNet := timed(func() error {
		return createNetwork(api.NetworkCreate{Name: "scalelast", Subnets: []string{subnet(*networks)}})
	})
	plain := timed(func() error {
		return createSandbox(api.SandboxCreate{Name: "scaleplain", Networks: []string{"scale0"}})
	})

	fmt.Printf("## Firewall scale (bench/fwscale)\n\n")
	fmt.Printf("%d bridge networks with explicit /24 subnets, created one after the other through the API; then %d\n", *networks, *ports)
	fmt.Printf("published ports, %d per sandbox (%d sandboxes on networks scale0..); each call timed at the\n", *per, sandboxes)
	fmt.Printf("client. \"median of 10\" is the median of the 10 calls ending at that one (calls 1-10 for the first).\n")
	fmt.Printf("rules / elements: berth's nftables rules and set elements in the kernel (all three tables).\n\n")
	fmt.Printf("| networks | create (that one) | median of 10 | rules | elements |\n|---:|---:|---:|---:|---:|\n")
	for _, n := range sortedKeys(netCounts) {
		fmt.Println(row(n, n, netTimes, netCounts[n]))
	}
	fmt.Printf("\n| published ports | sandbox create with %d ports (that one) | median of 10 | rules | elements |\n|---:|---:|---:|---:|---:|\n", *per)
	for _, n := range sortedKeys(sbCounts) {
		fmt.Println(row(n**per, n, sbTimes, sbCounts[n]))
	}
	fmt.Printf("\nRatios, last to first: network create %.2f (medians of 10: %.2f)",
		ratio(netTimes[len(netTimes)-1], netTimes[0]), ratio(median(netTimes, len(netTimes)), median(netTimes, 1)))
	if len(sbTimes) > 0 {
		fmt.Printf("; sandbox create with %d ports %.2f (medians of 10: %.2f)",
			*per, ratio(sbTimes[len(sbTimes)-1], sbTimes[0]), ratio(median(sbTimes, len(sbTimes)), median(sbTimes, 1)))
	}
	fmt.Printf(".\n")
	fmt.Printf("With all %d networks and %d ports in place: network create %s, sandbox create without ports %s.\n",
		*networks, sandboxes**per, ms(extraNet), ms(plain))
}

// subnet is network i's subnet: 10.128.0.0/24, 10.128.1.0/24, ... (1,024 per /14).
func subnet(i int) string { return fmt.Sprintf("10.%d.%d.0/24", 128+i/256, i%256) }

func checkpoints(max int, ns ...int) map[int]bool {
	m := map[int]bool{max: true}
	for _, n := range ns {
		if n <= max {
			m[n] = true
		}
	}
	return m
}

// row is the table row of the k-th call (1-based), labelled n.
func row(n, k int, ts []time.Duration, counts [2]int) string {
	return fmt.Sprintf("| %d | %s | %s | %d | %d |", n, ms(ts[k-1]), ms(median(ts, k)), counts[0], counts[1])
}

func sortedKeys(m map[int][2]int) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// median is the median of the 10 durations ending at the k-th (1-based), or of the first 10.
func median(ts []time.Duration, k int) time.Duration {
	k = max(k, min(10, len(ts)))
	w := slices.Clone(ts[max(0, k-10):k])
	slices.Sort(w)
	return w[len(w)/2]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func timed(f func() error) time.Duration {
	t0 := time.Now()
	if err := f(); err != nil {
		log.Fatal(err)
	}
	return time.Since(t0)
}

// count counts the rules and the set elements (as the kernel stores them: an IPv4 range of
// a plain interval set is two) of berth's tables in this netns.
func count() [2]int {
	var rules, elems int
	c, err := nftables.New()
	if err != nil {
		log.Fatal(err)
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6, nftables.TableFamilyBridge} {
		t := &nftables.Table{Name: "berth", Family: fam}
		chains, err := c.ListChainsOfTableFamily(fam)
		if err != nil {
			log.Fatal(err)
		}
		for _, ch := range chains {
			if ch.Table.Name != "berth" {
				continue
			}
			rs, err := c.GetRules(t, ch)
			if err != nil {
				log.Fatal(err)
			}
			rules += len(rs)
		}
		sets, err := c.GetSets(t)
		if err != nil {
			continue // no such table
		}
		for _, s := range sets {
			es, err := c.GetSetElements(s)
			if err != nil {
				log.Fatal(err)
			}
			elems += len(es)
		}
	}
	return [2]int{rules, elems}
}

// createNetwork is POST /v1/networks (api/client has no typed call for it).
func createNetwork(req api.NetworkCreate) error {
	return daemon.Do(ctx, http.MethodPost, "/networks", req, nil)
}

func createSandbox(req api.SandboxCreate) error {
	_, err := daemon.CreateSandbox(ctx, req)
	return err
}
