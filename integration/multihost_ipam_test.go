package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// perHost is how many sandboxes each host creates at once in the concurrency test.
const perHost = 50

// createMany creates n sandboxes named PREFIX-i on network net of h, all at once, and
// returns the errors of those that failed.
func (h *host) createMany(prefix, net string, n int) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s-%d", prefix, i)
			if _, e, err := h.run("sandbox", "create", "--name", name, "--network", net); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("host %s: create %s: %v: %s", h.name, name, err, strings.TrimSpace(e)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// addresses returns the address on net of every sandbox of h, by sandbox name, from
// `sandbox inspect`.
func (h *host) addresses(net string) map[string]string {
	h.t.Helper()
	ips := map[string]string{}
	for _, name := range strings.Fields(h.must("sandbox", "ls", "--format", "{{.Name}}")) {
		if ep, ok := h.cli.inspectSandbox(name).Networks[net]; ok {
			ips[name] = ep.IPAddress
		}
	}
	return ips
}

// checkUnique fails the test for every address two sandboxes of the hosts hold on net, and
// for any outside subnet; it returns every address by "HOST/NAME".
func checkUnique(t *testing.T, hosts []*host, net string, subnet netip.Prefix) map[string]string {
	t.Helper()
	all := map[string]string{} // HOST/NAME -> IP
	owner := map[string]string{}
	for _, h := range hosts {
		for name, ip := range h.addresses(net) {
			key := h.name + "/" + name
			all[key] = ip
			a, err := netip.ParseAddr(ip)
			if err != nil || !subnet.Contains(a) {
				t.Errorf("%s has address %q, want one in %s", key, ip, subnet)
			}
			if prev, dup := owner[ip]; dup {
				t.Errorf("duplicate address %s: %s and %s", ip, prev, key)
			}
			owner[ip] = key
		}
	}
	return all
}

// TestMultihostConcurrentCreates: three hosts create 50 sandboxes each on one overlay
// network, all at once; every sandbox gets an address, no two the same, and each host
// resolves the others' sandboxes to the addresses their own hosts gave them.
func TestMultihostConcurrentCreates(t *testing.T) {
	r := overlayRig(t, 3)
	a := r.hosts[0]
	subnet := netip.MustParsePrefix("10.71.0.0/24")
	id := a.must("network", "create", "-d", "overlay", "--subnet", subnet.String(), "ov")
	for _, h := range r.hosts[1:] {
		h.waitNetwork("ov", id)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([][]error, len(r.hosts))
	for i, h := range r.hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.createMany("s"+strings.ToLower(h.name), "ov", perHost) }()
	}
	wg.Wait()
	t.Logf("%d concurrent creates on %d hosts took %v", perHost*len(r.hosts), len(r.hosts), time.Since(start))
	for _, es := range errs {
		for _, err := range es {
			t.Error(err)
		}
	}
	all := checkUnique(t, r.hosts, "ov", subnet)
	if len(all) != perHost*len(r.hosts) {
		t.Errorf("%d sandboxes have an address on ov, want %d", len(all), perHost*len(r.hosts))
	}
	// Each host resolves a few of every other host's sandboxes, from one of its own.
	for _, h := range r.hosts {
		self := "s" + strings.ToLower(h.name) + "-0"
		for _, other := range r.hosts {
			if other == h {
				continue
			}
			for _, i := range []int{0, perHost / 2, perHost - 1} {
				name := fmt.Sprintf("s%s-%d", strings.ToLower(other.name), i)
				if want := all[other.name+"/"+name]; want != "" {
					h.waitDig(self, name, want, propagation)
				}
			}
		}
	}
}
