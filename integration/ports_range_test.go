package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/internal/nsutil"
)

// Ports like Docker (issue 17.4): ranges, a host range to choose from, -P onto ephemeral
// ports, all with real traffic; a range is held all or nothing, and 1,000 ports at once
// take no rule each.

// serveIn answers on each proto/port in a netns with "NAME PORT PEERIP".
func serveIn(t *testing.T, name, nsPath, proto string, ports ...int) {
	t.Helper()
	for _, port := range ports {
		addr := fmt.Sprintf("0.0.0.0:%d", port)
		if proto == "udp" {
			pc, err := nsutil.ListenUDP(nsPath, addr)
			if err != nil {
				t.Fatalf("udp %d in %s: %v", port, name, err)
			}
			t.Cleanup(func() { pc.Close() })
			go func() {
				buf := make([]byte, 512)
				for {
					_, from, err := pc.ReadFromUDP(buf)
					if err != nil {
						return
					}
					pc.WriteToUDP(fmt.Appendf(nil, "%s %d %s\n", name, port, from.IP), from)
				}
			}()
			continue
		}
		l, err := nsutil.ListenTCP(nsPath, addr)
		if err != nil {
			t.Fatalf("tcp %d in %s: %v", port, name, err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s %d %s\n", name, port, c.RemoteAddr().(*net.TCPAddr).IP)
				c.Close()
			}
		}()
	}
}

type portBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string
}

// inspectPorts is sandbox inspect's NetworkSettings-like Ports.
func (d *daemon) inspectPorts(name string) map[string][]portBinding {
	d.t.Helper()
	var out []struct{ Ports map[string][]portBinding }
	if err := json.Unmarshal([]byte(d.must("sandbox", "inspect", name)), &out); err != nil || len(out) != 1 {
		d.t.Fatalf("sandbox inspect %s: %v", name, err)
	}
	return out[0].Ports
}

// nftElements counts the elements of every set and map of berth's tables.
func nftElements(t *testing.T) int {
	t.Helper()
	out, err := runOut("nft", "-j", "list", "ruleset")
	if err != nil {
		t.Fatalf("nft -j list ruleset: %v", err)
	}
	var rs struct {
		Nftables []map[string]struct {
			Table string          `json:"table"`
			Elem  json.RawMessage `json:"elem"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	n := 0
	for _, o := range rs.Nftables {
		for _, kind := range []string{"set", "map"} {
			s, ok := o[kind]
			if !ok || s.Table != "berth" || len(s.Elem) == 0 {
				continue
			}
			var elems []json.RawMessage
			if err := json.Unmarshal(s.Elem, &elems); err != nil {
				t.Fatalf("nft -j elem: %v", err)
			}
			n += len(elems)
		}
	}
	return n
}

// TestPublishRange: -p 18100-18104:18100-18104 maps port to port; a server on two ports of
// the range answers through them from the host and from another netns. -p
// 18110-18120:7100/udp, whose first port another process has, gets 18111 (Docker: the
// first free port of the range). A range with one port taken is refused whole, in one line
// naming it, with nothing changed.
func TestPublishRange(t *testing.T) {
	d := newDaemon(t)
	d.start()
	startOutside(t)
	d.must("network", "create", "--subnet", "10.66.0.0/24", "app")
	u, err := net.ListenPacket("udp4", "0.0.0.0:18110")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	d.must("sandbox", "create", "--name", "web", "--network", "app", "-p", "18100-18104:18100-18104",
		"-p", "18110-18120:7100/udp", "-p", "127.0.0.1:18130-18131:7200-7201")
	serveIn(t, "web", "/run/netns/web", "tcp", 18101, 18103, 7200, 7201)
	serveIn(t, "web", "/run/netns/web", "udp", 7100)

	for _, c := range []struct{ from, proto, addr, want string }{
		{"", "tcp", "127.0.0.1:18101", "web 18101 10.66.0.1"},
		{"", "tcp", "[::1]:18103", "web 18103 10.66.0.1"}, // the proxy
		{"/run/netns/outside", "tcp", "192.0.2.1:18101", "web 18101 192.0.2.2"},
		{"/run/netns/outside", "tcp", "192.0.2.1:18103", "web 18103 192.0.2.2"},
		{"", "udp", "127.0.0.1:18111", "web 7100 10.66.0.1"},
		{"/run/netns/outside", "udp", "192.0.2.1:18111", "web 7100 192.0.2.2"},
		{"", "tcp", "127.0.0.1:18130", "web 7200 10.66.0.1"},
		{"", "tcp", "127.0.0.1:18131", "web 7201 10.66.0.1"},
		{"/run/netns/outside", "tcp", "192.0.2.1:18130", ""}, // 127.0.0.1 only
	} {
		if got := reach(t, c.from, c.proto, c.addr); got != c.want {
			t.Errorf("%s %s from %q: %q, want %q", c.proto, c.addr, c.from, got, c.want)
		}
	}
	for p := 18100; p <= 18104; p++ {
		checkHeld(t, "tcp", p)
	}
	ports := d.inspectPorts("web")
	want := map[string]string{
		"18100/tcp": `[{"HostIp":"0.0.0.0","HostPort":"18100"},{"HostIp":"::","HostPort":"18100"}]`,
		"18104/tcp": `[{"HostIp":"0.0.0.0","HostPort":"18104"},{"HostIp":"::","HostPort":"18104"}]`,
		"7100/udp":  `[{"HostIp":"0.0.0.0","HostPort":"18111"},{"HostIp":"::","HostPort":"18111"}]`,
		"7201/tcp":  `[{"HostIp":"127.0.0.1","HostPort":"18131"}]`,
	}
	for k, w := range want {
		if b, _ := json.Marshal(ports[k]); string(b) != w {
			t.Errorf("inspect Ports[%s] = %s, want %s", k, b, w)
		}
	}
	if len(ports) != 8 {
		t.Errorf("inspect has %d ports, want 8: %v", len(ports), ports)
	}

	// All or nothing: 18142 is another process's.
	l, err := net.Listen("tcp4", "0.0.0.0:18142")
	if err != nil {
		t.Fatal(err)
	}
	before := nftRuleset()
	d.fails(`invalid publish "18140-18144:18140-18144": bind 0.0.0.0:18142/tcp: address already in use (taken by another process)`,
		"sandbox", "create", "--name", "db", "--network", "app", "-p", "18140-18144:18140-18144")
	if after := nftRuleset(); after != before {
		t.Errorf("refused range changed the ruleset")
	}
	for _, p := range []int{18140, 18141, 18143, 18144} {
		checkFree(t, "tcp", p)
	}
	l.Close()
	// A port of another sandbox's range: Docker's words, naming the sandbox.
	d.fails(`invalid publish "18103:80": Bind for 0.0.0.0:18103 failed: port is already allocated (by sandbox web)`,
		"sandbox", "create", "--name", "db", "--network", "app", "-p", "18103:80")
	// Docker's parser's words for a bad range.
	d.fails(`invalid publish "18140-18150:80-81": invalid ranges specified for container and host Ports: 80-81 and 18140-18150`,
		"sandbox", "create", "--name", "db", "-p", "18140-18150:80-81")
	d.must("sandbox", "create", "--name", "db", "--network", "app", "-p", "18140-18144:18140-18144")
	checkHeld(t, "tcp", 18142)
	d.must("sandbox", "rm", "-f", "db", "web")
	for _, p := range []int{18100, 18104, 18142} {
		checkFree(t, "tcp", p)
	}
	checkFree(t, "udp", 18111)
}

// TestPublishAllEphemeral: -P publishes every exposed port (--expose ranges too) on an
// ephemeral port of ip_local_port_range, on 0.0.0.0 and ::, as Docker's inspect shows;
// an exposed port -p binds keeps only that binding. The port inspect shows answers; a
// restart and a kill -9 keep the same numbers.
func TestPublishAllEphemeral(t *testing.T) {
	d := newDaemon(t)
	d.start()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	lo, _ := strconv.Atoi(f[0])
	hi, _ := strconv.Atoi(f[1])
	d.must("network", "create", "--subnet", "10.67.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app", "-P",
		"--expose", "7300-7302", "--expose", "7310/udp", "-p", "18150:7320")
	serveIn(t, "web", "/run/netns/web", "tcp", 7300, 7301, 7302, 7320)
	serveIn(t, "web", "/run/netns/web", "udp", 7310)

	check := func(when string) map[string][]portBinding {
		t.Helper()
		ports := d.inspectPorts("web")
		if len(ports) != 5 {
			t.Errorf("%s: inspect has %d ports, want 5: %v", when, len(ports), ports)
		}
		for _, k := range []string{"7300/tcp", "7301/tcp", "7302/tcp", "7310/udp"} {
			bs := ports[k]
			if len(bs) != 2 || bs[0].HostIP != "0.0.0.0" || bs[1].HostIP != "::" || bs[0].HostPort != bs[1].HostPort {
				t.Errorf("%s: %s = %+v, want one port on 0.0.0.0 and ::", when, k, bs)
				continue
			}
			hp, _ := strconv.Atoi(bs[0].HostPort)
			if hp < lo || hp > hi {
				t.Errorf("%s: %s on host port %d, outside ip_local_port_range %d-%d", when, k, hp, lo, hi)
			}
			port, proto, _ := strings.Cut(k, "/")
			if got, want := reach(t, "", proto, "127.0.0.1:"+bs[0].HostPort), "web "+port+" 10.67.0.1"; got != want {
				t.Errorf("%s: %s 127.0.0.1:%s: %q, want %q", when, proto, bs[0].HostPort, got, want)
			}
			if got, want := reach(t, "", proto, "[::1]:"+bs[0].HostPort), "web "+port+" 10.67.0.1"; got != want {
				t.Errorf("%s: %s [::1]:%s: %q, want %q", when, proto, bs[0].HostPort, got, want)
			}
		}
		if b, _ := json.Marshal(ports["7320/tcp"]); string(b) != `[{"HostIp":"0.0.0.0","HostPort":"18150"},{"HostIp":"::","HostPort":"18150"}]` {
			t.Errorf("%s: 7320/tcp = %s, want only the -p binding 18150", when, b)
		}
		return ports
	}
	first := check("after create")
	same := func(when string, got map[string][]portBinding) {
		t.Helper()
		a, _ := json.Marshal(first)
		b, _ := json.Marshal(got)
		if string(a) != string(b) {
			t.Errorf("%s: ports changed:\n%s\nwant\n%s", when, b, a)
		}
	}
	d.stop()
	d.start()
	same("after restart", check("after restart"))
	d.kill()
	d.start()
	same("after kill -9", check("after kill -9"))

	// --expose alone publishes nothing; inspect shows the port as Docker does ("7400/tcp":null).
	d.must("sandbox", "create", "--name", "quiet", "--network", "app", "--expose", "7400-7401")
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(d.must("sandbox", "inspect", "quiet")), &raw); err != nil || len(raw) != 1 {
		t.Fatalf("sandbox inspect quiet: %v", err)
	}
	var buf bytes.Buffer
	json.Compact(&buf, raw[0]["Ports"])
	if out, want := buf.String(), `{"7400/tcp":null,"7401/tcp":null}`; out != want {
		t.Errorf("inspect quiet Ports = %s, want %s (docker: exposed-only ports are null)", out, want)
	}
}

// TestPublishThousand: -p 10000-10999:10000-10999 makes 1,000 bindings: create and rm are
// timed, the firewall gets set elements and no rules, traffic reaches both ends of the
// range, and rm takes every element back.
func TestPublishThousand(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.68.0.0/24", "app")
	start := time.Now()
	d.must("sandbox", "create", "--name", "one", "--network", "app", "-p", "9999:9999")
	one := time.Since(start)
	d.must("sandbox", "rm", "-f", "one")
	rules0, elems0 := nftRuleCount(t), nftElements(t)
	start = time.Now()
	d.must("sandbox", "create", "--name", "big", "--network", "app", "-p", "10000-10999:10000-10999")
	created := time.Since(start)
	rules1, elems1 := nftRuleCount(t), nftElements(t)
	serveIn(t, "big", "/run/netns/big", "tcp", 10000, 10500, 10999)
	for _, p := range []int{10000, 10500, 10999} {
		if got, want := reach(t, "", "tcp", fmt.Sprintf("127.0.0.1:%d", p)), fmt.Sprintf("big %d 10.68.0.1", p); got != want {
			t.Errorf("127.0.0.1:%d: %q, want %q", p, got, want)
		}
		checkHeld(t, "tcp", p)
	}
	if got := len(d.inspectPorts("big")); got != 1000 {
		t.Errorf("inspect shows %d ports, want 1000", got)
	}
	start = time.Now()
	d.must("sandbox", "rm", "-f", "big")
	removed := time.Since(start)
	rules2, elems2 := nftRuleCount(t), nftElements(t)
	t.Logf("1,000 ports: create %v (one port: %v), rm %v; nftables rules %d -> %d -> %d, set elements %d -> %d -> %d",
		created.Round(time.Millisecond), one.Round(time.Millisecond), removed.Round(time.Millisecond),
		rules0, rules1, rules2, elems0, elems1, elems2)
	if rules1 != rules0 {
		t.Errorf("rules with 1,000 ports: %d, want %d (ports are set elements)", rules1, rules0)
	}
	if elems1-elems0 < 1000 {
		t.Errorf("set elements grew by %d for 1,000 ports", elems1-elems0)
	}
	if rules2 != rules0 || elems2 != elems0 {
		t.Errorf("after rm: %d rules, %d elements; want %d, %d as before", rules2, elems2, rules0, elems0)
	}
	// Generous bounds, for a loaded CI machine: the point is no per-port rule or round trip.
	if created > 10*time.Second || removed > 10*time.Second {
		t.Errorf("create %v, rm %v: want each under 10s", created, removed)
	}
	for _, p := range []int{10000, 10999} {
		checkFree(t, "tcp", p)
	}
}
