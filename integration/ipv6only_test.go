package integration

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// netInspect is the part of `berth network inspect` the IPv6-only and option tests read.
type netInspect struct {
	ID         string `json:"Id"`
	Driver     string
	EnableIPv4 bool
	EnableIPv6 bool
	Attachable bool
	ConfigOnly bool
	ConfigFrom struct{ Network string }
	IPAM       struct {
		Config []struct {
			Subnet, IPRange, Gateway string
			AuxiliaryAddresses       map[string]string
		}
	}
	Options map[string]string
}

func (d *daemon) inspectNetwork(name string) netInspect {
	d.t.Helper()
	var out []netInspect
	if err := json.Unmarshal([]byte(d.must("network", "inspect", name)), &out); err != nil || len(out) != 1 {
		d.t.Fatalf("network inspect %s: %v (%d results)", name, err, len(out))
	}
	return out[0]
}

// TestIPv6OnlyNetwork is issue 17 item 6 (Docker 28's `network create --ipv4=false
// --ipv6`) on the real kernel: no IPv4 on the bridge or in the sandboxes, the IPv6 default
// route via the gateway, names answering AAAA and NODATA for A on 127.0.0.11 (loopback
// keeps its IPv4 in an IPv6-only netns), PTR, hosts, getent, a sandbox also on a
// dual-stack network, IPv6 isolation, and all of it again after a restart.
func TestIPv6OnlyNetwork(t *testing.T) {
	d := newDaemon(t)
	d.start()
	// moby daemon/libnetwork/drivers/bridge/bridge_linux.go: neither family.
	d.fails("IPv4 or IPv6 must be enabled", "network", "create", "--ipv4=false", "nofamily")
	d.fails(`invalid subnet "10.1.0.0/24": IPv4 subnet on a network with --ipv4=false`,
		"network", "create", "--ipv4=false", "--ipv6", "--subnet", "10.1.0.0/24", "mixed")
	id := d.must("network", "create", "--ipv4=false", "--ipv6", "--subnet", "fd42:17::/64", "v6")
	br := "br-" + id[:12]
	d.must("sandbox", "create", "--name", "a", "--network", "v6")
	d.must("sandbox", "create", "--name", "b", "--network", "v6")
	d.must("network", "create", "--ipv6", "--subnet", "10.77.0.0/24", "--subnet", "fd42:77::/64", "dual")
	d.must("sandbox", "create", "--name", "c", "--network", "dual")
	d.must("network", "connect", "v6", "c")
	d.must("sandbox", "create", "--name", "x", "--network", "dual")

	check := func(when string) {
		t.Helper()
		n := d.inspectNetwork("v6")
		if n.EnableIPv4 || !n.EnableIPv6 || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "fd42:17::/64" || n.IPAM.Config[0].Gateway != "fd42:17::1" {
			t.Errorf("%s: inspect v6: EnableIPv4 %v EnableIPv6 %v IPAM %+v; want false, true and only fd42:17::/64 via fd42:17::1",
				when, n.EnableIPv4, n.EnableIPv6, n.IPAM.Config)
		}
		if out, _ := exec.Command("ip", "-4", "-o", "addr", "show", "dev", br).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
			t.Errorf("%s: bridge %s has IPv4: %s", when, br, out)
		}
		if out, _ := exec.Command("ip", "-6", "-o", "addr", "show", "dev", br).CombinedOutput(); !strings.Contains(string(out), "fd42:17::1/64") {
			t.Errorf("%s: bridge %s lacks fd42:17::1/64: %s", when, br, out)
		}
		// Only lo has IPv4 in a sandbox of an IPv6-only network.
		out, err := inNS(t, "a", "ip", "-4", "-o", "addr")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); err != nil || len(f) < 2 || f[1] != "lo" {
				t.Errorf("%s: ip -4 addr in a: %v %q, want lo only", when, err, out)
				break
			}
		}
		if out, _ := inNS(t, "a", "ip", "-4", "route"); strings.TrimSpace(out) != "" {
			t.Errorf("%s: IPv4 routes in a: %s", when, out)
		}
		if out, _ := inNS(t, "a", "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via fd42:17::1 dev eth0") {
			t.Errorf("%s: IPv6 default route in a: %q, want via fd42:17::1 dev eth0", when, out)
		}
		bIP := d.inspectSandbox("b").Networks["v6"].GlobalIPv6Address
		aIP := d.inspectSandbox("a").Networks["v6"].GlobalIPv6Address
		if d.inspectSandbox("b").Networks["v6"].IPAddress != "" || !strings.HasPrefix(bIP, "fd42:17::") {
			t.Fatalf("%s: b on v6: %+v, want only an IPv6 address", when, d.inspectSandbox("b").Networks["v6"])
		}
		if r := dig(t, "a", "AAAA", "b"); r.status != "NOERROR" || !slices.Equal(r.values("AAAA"), []string{bIP}) {
			t.Errorf("%s: dig AAAA b from a: %s %v, want NOERROR %s\n%s", when, r.status, r.answers, bIP, r.raw)
		}
		// NODATA: the name is ours, so NOERROR with no answer (not NXDOMAIN, not forwarded).
		if r := dig(t, "a", "A", "b"); r.status != "NOERROR" || len(r.answers) != 0 {
			t.Errorf("%s: dig A b from a: %s %v, want NOERROR and 0 answers\n%s", when, r.status, r.answers, r.raw)
		}
		rev, _ := dns.ReverseAddr(bIP)
		if r := dig(t, "a", "-x", bIP); r.status != "NOERROR" || !slices.Equal(r.answers, []string{rev + " 600 IN PTR b.v6."}) {
			t.Errorf("%s: dig -x %s from a: %s %v, want PTR b.v6.\n%s", when, bIP, r.status, r.answers, r.raw)
		}
		if out, err := inNS(t, "a", "getent", "ahosts", "b"); err != nil || !strings.Contains(out, bIP) || strings.Contains(out, ".") && !strings.Contains(out, ":") {
			t.Errorf("%s: getent ahosts b in a: %v %q, want %s", when, err, out, bIP)
		}
		if out, _ := inNS(t, "a", "cat", "/etc/hosts"); !strings.Contains(out, aIP+"\ta") {
			t.Errorf("%s: /etc/hosts of a lacks its IPv6 address %s:\n%s", when, aIP, out)
		}
		if err := ping(t, "a", "b"); err != nil {
			t.Errorf("%s: ping b by name (IPv6 only): %v", when, err)
		}
		// c is on both: it reaches a over v6 and x over IPv4 on dual; its default routes
		// are IPv4 via dual (eth0, joined first) and IPv6 via dual too.
		if err := ping(t, "c", aIP); err != nil {
			t.Errorf("%s: %v", when, err)
		}
		if err := ping(t, "c", d.ip("x", "dual")); err != nil {
			t.Errorf("%s: %v", when, err)
		}
		// x, only on dual, cannot reach the IPv6-only network's sandboxes.
		if err := ping(t, "x", aIP); err == nil {
			t.Errorf("%s: x (dual only) reached a's address %s on the IPv6-only network", when, aIP)
		}
	}
	check("before restart")
	// No IPv4 NAT for the IPv6-only network: berth's ip table has its bridge in the
	// interface sets of isolation (which match no IPv4 packet of it) but in no set of
	// subnets (ownnets, pubnets: bridge . IPv4 subnet); the ip6 table has its subnet.
	ip4, _ := exec.Command("nft", "list", "table", "ip", "berth").CombinedOutput()
	if regexp.MustCompile(`"` + br + `" \. [0-9]`).Match(ip4) {
		t.Errorf("berth's ip table has an IPv4 subnet of the IPv6-only network's bridge %s:\n%s", br, ip4)
	}
	ip6, _ := exec.Command("nft", "list", "table", "ip6", "berth").CombinedOutput()
	if !strings.Contains(string(ip6), `"`+br+`" . fd42:17::/64`) {
		t.Errorf("berth's ip6 table lacks %s . fd42:17::/64:\n%s", br, ip6)
	}
	d.stop()
	d.start()
	check("after restart")

	// Without --subnet, an IPv6 subnet is picked: a ULA /64, and still no IPv4.
	d.must("network", "create", "--ipv4=false", "--ipv6", "v6auto")
	n := d.inspectNetwork("v6auto")
	if len(n.IPAM.Config) != 1 || !strings.HasPrefix(n.IPAM.Config[0].Subnet, "fd") || !strings.HasSuffix(n.IPAM.Config[0].Subnet, "::/64") || n.EnableIPv4 {
		t.Errorf("v6auto: EnableIPv4 %v IPAM %+v, want one fd../64 subnet", n.EnableIPv4, n.IPAM.Config)
	}
	// Docker 28's words for --ip on it: moby daemon/container_operations.go.
	d.fails("no configured subnet contains IP address 10.1.2.3", "sandbox", "create", "--name", "y", "--network", "v6", "--ip", "10.1.2.3")
}
