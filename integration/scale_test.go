package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"berth/internal/testns"
)

// TestFirewallScale (issue 14.1): 100 networks and 300 published ports through the daemon,
// where the 7th network used to fail ("apply firewall: netlink receive: recvmsg: no buffer
// space available"). The rules stay as many as for one network (networks and ports are set
// elements), isolation and published ports still hold for a sample, removals take their
// elements with them, and a restart rebuilds the same tables.
func TestFirewallScale(t *testing.T) {
	const networks, sandboxes, portsEach = 100, 30, 10
	d := newDaemon(t)
	d.start()
	start := time.Now()
	var baseRules int
	for i := range networks {
		d.must("network", "create", "--subnet", fmt.Sprintf("10.%d.%d.0/24", 100+i/250, i%250), fmt.Sprintf("scale%d", i))
		if i == 0 {
			baseRules = nftRuleCount(t)
		}
	}
	t.Logf("%d networks in %v", networks, time.Since(start))
	// Sandbox s is on network s*3 and publishes host ports 20000+s*10 ... +9 to 7000.
	start = time.Now()
	for s := range sandboxes {
		args := []string{"sandbox", "create", "--name", fmt.Sprintf("sc%d", s), "--network", fmt.Sprintf("scale%d", s*3)}
		for p := range portsEach {
			args = append(args, "-p", fmt.Sprintf("%d:%d", 20000+s*portsEach+p, echoPort))
		}
		d.must(args...)
	}
	t.Logf("%d published ports in %v", sandboxes*portsEach, time.Since(start))
	if got := nftRuleCount(t); got != baseRules {
		t.Errorf("rules with %d networks and %d ports: %d; want %d, as with one network", networks, sandboxes*portsEach, got, baseRules)
	}
	listing := nftTable(t)
	for _, want := range []string{"10.100.99.0/24", "tcp . 20299 : 10.100.87.2 . 7000"} {
		if !strings.Contains(listing, want) {
			t.Errorf("table ip berth lacks %q", want)
		}
	}

	// A sample: sc0, sc1 and sc29 on their own networks, sc0b beside sc0.
	d.must("sandbox", "create", "--name", "sc0b", "--network", "scale0")
	for _, s := range []string{"sc0", "sc1", "sc29", "sc0b"} {
		echoIn(t, s, "/run/netns/"+s)
	}
	ns := func(s string) string { return "/run/netns/" + s }
	for _, c := range []struct{ from, to string }{{"sc0", "sc1"}, {"sc1", "sc29"}, {"sc29", "sc0"}} {
		if got := reach(t, ns(c.from), "tcp", d.ip(c.to, fmt.Sprintf("scale%d", sandboxNum(c.to)*3))+":7000"); got != "" {
			t.Errorf("%s -> %s across networks reached %q, want isolation", c.from, c.to, got)
		}
	}
	if got := reach(t, ns("sc0b"), "tcp", d.ip("sc0", "scale0")+":7000"); !strings.HasPrefix(got, "sc0 ") {
		t.Errorf("sc0b -> sc0 on one network: %q", got)
	}
	for _, c := range []struct {
		port int
		want string
	}{{20000, "sc0"}, {20019, "sc1"}, {20295, "sc29"}} {
		addr := fmt.Sprintf("127.0.0.1:%d", c.port)
		if got := reach(t, "", "tcp", addr); !strings.HasPrefix(got, c.want+" ") {
			t.Errorf("published %s from the daemon netns: %q, want %s", addr, got, c.want)
		}
		if got := reach(t, ns("sc1"), "tcp", fmt.Sprintf("10.100.0.1:%d", c.port)); !strings.HasPrefix(got, c.want+" ") {
			t.Errorf("published %d from sc1 through a gateway address: %q, want %s", c.port, got, c.want)
		}
	}

	// Removals take their elements with them, and only theirs.
	d.must("sandbox", "rm", "-f", "sc29")
	d.must("network", "rm", "scale99")
	listing = nftTable(t)
	for _, gone := range []string{"10.100.99.0/24", ". 20295 :"} {
		if strings.Contains(listing, gone) {
			t.Errorf("table ip berth still has %q after removal", gone)
		}
	}
	if got := reach(t, "", "tcp", "127.0.0.1:20295"); got != "" {
		t.Errorf("removed sandbox's port still answers: %q", got)
	}
	if got := reach(t, "", "tcp", "127.0.0.1:20019"); !strings.HasPrefix(got, "sc1 ") {
		t.Errorf("sc1's port after another's removal: %q", got)
	}

	// A restart rebuilds the tables whole: the same elements as the updates left.
	before := testns.SortedSets(nftTable(t))
	d.stop()
	d.start()
	if after := testns.SortedSets(nftTable(t)); after != before {
		t.Errorf("restart changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func sandboxNum(name string) int {
	var n int
	fmt.Sscanf(name, "sc%d", &n)
	return n
}

// nftRuleCount counts the rules of berth's tables.
func nftRuleCount(t *testing.T) int {
	t.Helper()
	n, in := 0, false
	for _, fam := range []string{"ip", "ip6", "bridge"} {
		for _, l := range strings.Split(nftTableOf(fam), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(l, "chain "):
				in = true
			case l == "}":
				in = false
			case in && l != "" && !strings.HasPrefix(l, "type "):
				n++
			}
		}
	}
	return n
}

func nftTableOf(family string) string {
	out, err := runOut("nft", "list", "table", family, "berth")
	if err != nil {
		return ""
	}
	return out
}
