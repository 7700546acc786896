package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/internal/nsutil"
	"berth/internal/testns"
)

// The data plane through the daemon (issue 4): a second netns "outside" is joined to the
// daemon's netns by a veth (192.0.2.1 on the daemon side, 192.0.2.2 outside, and no route
// from outside back to any bridge subnet, so only NAT makes replies find their way).

const echoPort = 7000

// startOutside makes the "outside" netns and its echo servers.
func startOutside(t *testing.T) {
	t.Helper()
	run(t, "ip", "netns", "add", "outside")
	run(t, "ip", "link", "add", "bthout0", "type", "veth", "peer", "name", "eth0", "netns", "outside")
	run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "bthout0")
	run(t, "ip", "link", "set", "bthout0", "up")
	run(t, "ip", "-n", "outside", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	run(t, "ip", "-n", "outside", "link", "set", "eth0", "up")
	run(t, "ip", "-n", "outside", "link", "set", "lo", "up")
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", "bthout0").Run()
		exec.Command("ip", "netns", "del", "outside").Run()
	})
	echoIn(t, "outside", "/run/netns/outside")
}

// echoIn serves TCP and UDP echo on echoPort in a netns: each answer is "NAME PEERIP".
func echoIn(t *testing.T, name, nsPath string) {
	t.Helper()
	l, err := nsutil.ListenTCP(nsPath, fmt.Sprintf("0.0.0.0:%d", echoPort))
	if err != nil {
		t.Fatalf("echo tcp in %s: %v", name, err)
	}
	pc, err := nsutil.ListenUDP(nsPath, fmt.Sprintf("0.0.0.0:%d", echoPort))
	if err != nil {
		t.Fatalf("echo udp in %s: %v", name, err)
	}
	t.Cleanup(func() { l.Close(); pc.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).IP.String()
			fmt.Fprintf(c, "%s %s\n", name, peer)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pc.WriteToUDP([]byte(fmt.Sprintf("%s %s\n", name, from.IP)), from)
		}
	}()
}

// reach dials addr over proto from inside nsPath ("" = the daemon's netns) and returns the
// echo's answer, or "" if nothing answered within a second.
func reach(t *testing.T, nsPath, proto, addr string) string {
	t.Helper()
	var out string
	err := nsutil.Do(nsPath, func() error {
		c, err := net.DialTimeout(proto, addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if proto == "udp" {
			c.Write([]byte("hi"))
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		out = strings.TrimSpace(line)
		return err
	})
	if err != nil {
		return ""
	}
	return out
}

func nftTable(t *testing.T) string {
	out, _ := exec.Command("nft", "list", "table", "ip", "berth").CombinedOutput()
	return string(out)
}

func TestDataPlane(t *testing.T) {
	d := newDaemon(t)
	d.start()
	startOutside(t)
	d.must("network", "create", "--subnet", "10.50.0.0/24", "app")
	d.must("network", "create", "--subnet", "10.51.0.0/24", "other")
	d.must("network", "create", "--subnet", "10.52.0.0/24", "--internal", "sealed")
	d.must("network", "create", "--subnet", "10.53.0.0/24", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
	d.must("sandbox", "create", "--name", "web", "--network", "app", "-p", "8080:7000", "-p", "8080:7000/udp", "-p", "7000")
	d.must("sandbox", "create", "--name", "peer", "--network", "app")
	d.must("sandbox", "create", "--name", "far", "--network", "other")
	d.must("sandbox", "create", "--name", "in1", "--network", "sealed")
	d.must("sandbox", "create", "--name", "in2", "--network", "sealed")
	d.must("sandbox", "create", "--name", "q1", "--network", "quiet", "--expose", "7000")
	d.must("sandbox", "create", "--name", "q2", "--network", "quiet")
	for _, s := range []string{"web", "peer", "far", "in1", "in2", "q1", "q2"} {
		echoIn(t, s, "/run/netns/"+s)
	}
	ns := func(s string) string { return "/run/netns/" + s }
	outside := "192.0.2.2:7000"

	// Outbound: masqueraded to the daemon's address.
	if got := reach(t, ns("web"), "tcp", outside); got != "outside 192.0.2.1" {
		t.Errorf("web -> outside: %q, want the daemon's address as source", got)
	}
	// Published ports: from outside (TCP, UDP), from the daemon's loopback, and hairpin.
	for _, c := range []struct{ from, proto, addr, want string }{
		{"/run/netns/outside", "tcp", "192.0.2.1:8080", "web 192.0.2.2"},
		{"/run/netns/outside", "udp", "192.0.2.1:8080", "web 192.0.2.2"},
		{"", "tcp", "127.0.0.1:8080", "web"},
		{"", "tcp", "192.0.2.1:8080", "web"},
		{ns("web"), "tcp", "192.0.2.1:8080", "web"},
		{ns("peer"), "tcp", "192.0.2.1:8080", "web"},
	} {
		if got := reach(t, c.from, c.proto, c.addr); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s %s from %q: %q, want %q", c.proto, c.addr, c.from, got, c.want)
		}
	}
	// -p 7000 picked an ephemeral host port, shown by `sandbox port`.
	ports := d.must("sandbox", "port", "web")
	var eph string
	for _, line := range strings.Split(ports, "\n") {
		if strings.HasPrefix(line, "7000/tcp -> 0.0.0.0:") && !strings.HasSuffix(line, ":8080") {
			eph = strings.TrimPrefix(line, "7000/tcp -> 0.0.0.0:")
		}
	}
	if eph == "" {
		t.Fatalf("sandbox port web:\n%s\nwant a 7000/tcp binding on an ephemeral port", ports)
	}
	if got := reach(t, "/run/netns/outside", "tcp", "192.0.2.1:"+eph); !strings.HasPrefix(got, "web") {
		t.Errorf("ephemeral port %s from outside: %q", eph, got)
	}
	// Isolation between networks; a sandbox on both reaches each side.
	if got := reach(t, ns("far"), "tcp", d.ip("web", "app")+":7000"); got != "" {
		t.Errorf("other -> app reached %q, want isolation", got)
	}
	d.must("network", "connect", "other", "peer")
	if got := reach(t, ns("peer"), "tcp", d.ip("far", "other")+":7000"); !strings.HasPrefix(got, "far") {
		t.Errorf("peer (on both) -> far: %q", got)
	}
	// Internal: nothing out, nothing in, peers still talk.
	if got := reach(t, ns("in1"), "tcp", outside); got != "" {
		t.Errorf("internal -> outside reached %q", got)
	}
	if got := reach(t, ns("in1"), "tcp", d.ip("in2", "sealed")+":7000"); !strings.HasPrefix(got, "in2") {
		t.Errorf("internal peers: %q", got)
	}
	if got := reach(t, ns("web"), "tcp", d.ip("in1", "sealed")+":7000"); got != "" {
		t.Errorf("app -> internal reached %q", got)
	}
	// ICC off: q2 cannot reach q1, and q1 cannot reach q2.
	q1 := d.ip("q1", "quiet")
	if got := reach(t, ns("q2"), "tcp", q1+":7000"); got != "" {
		t.Errorf("icc=false: q2 -> q1 reached %q", got)
	}
	// Restart: the ruleset comes back identical.
	before := nftTable(t)
	d.stop()
	d.start()
	if after := nftTable(t); testns.SortedSets(after) != testns.SortedSets(before) {
		t.Errorf("restart changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Removing the sandbox removes its rules (its DNAT), and only those.
	d.must("sandbox", "rm", "-f", "web")
	after := nftTable(t)
	if strings.Contains(after, "8080") || !strings.Contains(before, "8080") {
		t.Errorf("port 8080 rules before/after rm: %v/%v", strings.Contains(before, "8080"), strings.Contains(after, "8080"))
	}
	if got := reach(t, "/run/netns/outside", "tcp", "192.0.2.1:8080"); got != "" {
		t.Errorf("removed sandbox's port still answers: %q", got)
	}
	d.must("network", "disconnect", "other", "peer")
	d.must("sandbox", "rm", "-f", "far")
	d.must("network", "rm", "other")
	if strings.Contains(nftTable(t), "10.51.0.0") {
		t.Errorf("rules of removed network other remain:\n%s", nftTable(t))
	}
}

// TestLegacyLinkICC: with the daemon's --icc=false, --link on the default bridge opens
// exactly the linked pair for the target's exposed ports, in both directions of a
// connection; a user network with enable_icc=false blocks its peers.
func TestLegacyLinkICC(t *testing.T) {
	d := newDaemon(t)
	d.start("--icc=false")
	d.must("sandbox", "create", "--name", "one", "--expose", "7000")
	d.must("sandbox", "create", "--name", "two", "--link", "one:onetwo")
	d.must("sandbox", "create", "--name", "three")
	d.must("network", "create", "--subnet", "10.54.0.0/24", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
	d.must("sandbox", "create", "--name", "db", "--network", "quiet", "--expose", "7000")
	d.must("sandbox", "create", "--name", "other", "--network", "quiet")
	for _, s := range []string{"one", "two", "three", "db", "other"} {
		echoIn(t, s, "/run/netns/"+s)
	}
	one, two := d.ip("one", "bridge"), d.ip("two", "bridge")
	if got := reach(t, "/run/netns/two", "tcp", one+":7000"); !strings.HasPrefix(got, "one "+two) {
		t.Errorf("linked pair two -> one:7000: %q", got)
	}
	if got := reach(t, "/run/netns/three", "tcp", one+":7000"); got != "" {
		t.Errorf("unlinked three -> one reached %q", got)
	}
	if got := reach(t, "/run/netns/one", "tcp", two+":7000"); got != "" {
		t.Errorf("one -> two (not exposed, not linked that way) reached %q", got)
	}
	if got := reach(t, "/run/netns/other", "tcp", d.ip("db", "quiet")+":7000"); got != "" {
		t.Errorf("icc=false: other -> db reached %q", got)
	}
	var nets []networkJSON
	json.Unmarshal([]byte(d.must("network", "inspect", "bridge")), &nets)
	if len(nets) != 1 || nets[0].Options["com.docker.network.bridge.enable_icc"] != "false" {
		t.Errorf("network inspect bridge: options %v, want enable_icc=false", nets)
	}
}
