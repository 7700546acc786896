package integration

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Published ports hold their host port (issue 14.6): the daemon binds a socket per host
// address of each published port in its own netns, refuses a port another process has,
// and proxies what NAT cannot carry ([::1], and IPv6 to an IPv4-only sandbox).

// bindable reports whether a process of the daemon's netns could bind proto addr now.
func bindable(proto, addr string) error {
	if strings.HasPrefix(proto, "udp") {
		c, err := net.ListenPacket(proto, addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	l, err := net.Listen(proto, addr)
	if err == nil {
		l.Close()
	}
	return err
}

// checkHeld checks that no other process can bind host port port/proto on IPv4 or IPv6.
func checkHeld(t *testing.T, proto string, port int) {
	t.Helper()
	for _, a := range []string{"0.0.0.0", "[::]"} {
		fam := proto + "4"
		if a == "[::]" {
			fam = proto + "6"
		}
		if err := bindable(fam, a+":"+strconv.Itoa(port)); err == nil {
			t.Errorf("%s %s:%d could be bound: the published port is not held", proto, a, port)
		}
	}
}

// checkFree checks that a process can bind port/proto on both families again.
func checkFree(t *testing.T, proto string, port int) {
	t.Helper()
	for _, a := range []string{"0.0.0.0", "[::]"} {
		fam := proto + "4"
		if a == "[::]" {
			fam = proto + "6"
		}
		if err := bindable(fam, a+":"+strconv.Itoa(port)); err != nil {
			t.Errorf("%s %s:%d after release: %v", proto, a, port, err)
		}
	}
}

// TestPublishTakenPort: a host port some process listens on is refused in one line, with
// nothing made; once it is free the same create succeeds and holds it, rm frees it.
func TestPublishTakenPort(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.60.0.0/24", "app")
	l, err := net.Listen("tcp4", "0.0.0.0:18080")
	if err != nil {
		t.Fatal(err)
	}
	before := nftRuleset()
	d.fails(`invalid publish "18080:7000": bind 0.0.0.0:18080/tcp: address already in use`,
		"sandbox", "create", "--name", "web", "--network", "app", "-p", "18080:7000")
	if ls := d.must("sandbox", "ls", "-q"); ls != "" {
		t.Errorf("sandbox ls after a refused create: %q", ls)
	}
	if _, err := os.Lstat("/run/netns/web"); err == nil {
		t.Errorf("refused create left /run/netns/web")
	}
	if after := nftRuleset(); after != before {
		t.Errorf("refused create changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// UDP too, on IPv6 only: the :: socket of a port without a host IP is refused as well.
	u, err := net.ListenPacket("udp6", "[::]:18081")
	if err != nil {
		t.Fatal(err)
	}
	d.fails(`invalid publish "18081:7000/udp": bind [::]:18081/udp: address already in use`,
		"sandbox", "create", "--name", "web", "--network", "app", "-p", "18082:7000", "-p", "18081:7000/udp")
	u.Close()
	checkFree(t, "tcp", 18082) // the port held before the one refused is let go
	l.Close()

	d.must("sandbox", "create", "--name", "web", "--network", "app", "-p", "18080:7000", "-p", "18081:7000/udp")
	checkHeld(t, "tcp", 18080)
	checkHeld(t, "udp", 18081)
	d.must("sandbox", "rm", "-f", "web")
	checkFree(t, "tcp", 18080)
	checkFree(t, "udp", 18081)
}

// TestPublishEphemeralSkipsTaken: -p PORT picks a host port that binds, skipping the first
// of the ephemeral range when another process has it.
func TestPublishEphemeralSkipsTaken(t *testing.T) {
	d := newDaemon(t)
	d.start()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	lo := strings.Fields(string(b))[0]
	l, err := net.Listen("tcp6", "[::]:"+lo) // IPv6 only: the IPv4 socket would bind
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d.must("sandbox", "create", "--name", "eph", "-p", "7000")
	got := d.must("sandbox", "port", "eph") + "\n"
	if strings.Contains(got, "0.0.0.0:"+lo+"\n") || !strings.Contains(got, "7000/tcp -> 0.0.0.0:") {
		t.Errorf("sandbox port eph:\n%s\nwant a host port other than the taken %s", got, lo)
	}
}

// TestPublishProxy: a TCP server in an IPv4-only sandbox is reached at 127.0.0.1 (NAT),
// at [::1] and at the daemon's IPv6 address from another netns (proxy), for ports
// published without a host IP, on [::], on 127.0.0.1 and on [::1]; UDP through the proxy
// too. `sandbox port` prints the addresses bound. After a restart the ports are held and
// proxied again; after a kill -9, a port taken meanwhile is logged and the sandbox stays.
func TestPublishProxy(t *testing.T) {
	d := newDaemon(t)
	d.start()
	startOutside(t)
	run(t, "ip", "-6", "addr", "add", "2001:db8:7::1/64", "dev", "bthout0", "nodad")
	run(t, "ip", "-n", "outside", "-6", "addr", "add", "2001:db8:7::2/64", "dev", "eth0", "nodad")
	d.must("network", "create", "--subnet", "10.61.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app",
		"-p", "18090:7000", "-p", "18090:7000/udp", "-p", "[::]:18091:7000",
		"-p", "127.0.0.1:18092:7000", "-p", "[::1]:18093:7000")
	echoIn(t, "web", "/run/netns/web")

	wantPorts := strings.Join([]string{
		"7000/tcp -> 0.0.0.0:18090",
		"7000/tcp -> [::]:18090",
		"7000/tcp -> [::]:18091",
		"7000/tcp -> 127.0.0.1:18092",
		"7000/tcp -> [::1]:18093",
		"7000/udp -> 0.0.0.0:18090",
		"7000/udp -> [::]:18090",
	}, "\n")
	if got := d.must("sandbox", "port", "web"); got != wantPorts {
		t.Errorf("sandbox port web:\n%s\nwant:\n%s", got, wantPorts)
	}
	if got, _, _ := d.run("sandbox", "port", "web", "7000/udp"); got != "0.0.0.0:18090\n[::]:18090\n" {
		t.Errorf("sandbox port web 7000/udp: %q, want 0.0.0.0:18090 and [::]:18090", got)
	}

	check := func(when string) {
		t.Helper()
		for _, c := range []struct{ from, proto, addr, want string }{
			{"", "tcp", "127.0.0.1:18090", "web 10.61.0.1"},
			{"", "tcp", "[::1]:18090", "web 10.61.0.1"},
			{"/run/netns/outside", "tcp", "[2001:db8:7::1]:18090", "web 10.61.0.1"},
			{"/run/netns/outside", "tcp", "192.0.2.1:18090", "web 192.0.2.2"},
			{"", "udp", "[::1]:18090", "web 10.61.0.1"},
			{"/run/netns/outside", "udp", "[2001:db8:7::1]:18090", "web 10.61.0.1"},
			{"", "udp", "127.0.0.1:18090", "web 10.61.0.1"},
			{"", "tcp", "[::1]:18091", "web 10.61.0.1"},
			{"/run/netns/outside", "tcp", "[2001:db8:7::1]:18091", "web 10.61.0.1"},
			{"", "tcp", "127.0.0.1:18092", "web 10.61.0.1"},
			{"", "tcp", "[::1]:18093", "web 10.61.0.1"},
		} {
			if got := reach(t, c.from, c.proto, c.addr); got != c.want {
				t.Errorf("%s: %s %s from %q: %q, want %q", when, c.proto, c.addr, c.from, got, c.want)
			}
		}
		// -p [::]:PORT is IPv6 only, as in Docker: nothing on 127.0.0.1.
		if got := reach(t, "", "tcp", "127.0.0.1:18091"); got != "" {
			t.Errorf("%s: 127.0.0.1:18091 answered %q, want nothing ([::] only)", when, got)
		}
	}
	check("after create")
	checkHeld(t, "tcp", 18090)
	checkHeld(t, "udp", 18090)

	d.stop()
	checkFree(t, "tcp", 18090) // a stopped daemon holds nothing
	d.start()
	checkHeld(t, "tcp", 18090)
	checkHeld(t, "udp", 18090)
	check("after restart")

	// Crash, and another process takes one of the ports before the daemon is back.
	d.kill()
	l, err := net.Listen("tcp6", "[::1]:18093")
	if err != nil {
		t.Fatal(err)
	}
	d.start()
	l.Close()
	if !strings.Contains(d.log.String(), "published port not held") {
		t.Errorf("daemon log has no warning for the port taken while it was down")
	}
	if got := d.must("sandbox", "ls", "-q"); got == "" {
		t.Errorf("sandbox dropped after a port was taken while the daemon was down")
	}
	checkHeld(t, "tcp", 18090)
	if got := reach(t, "", "tcp", "[::1]:18091"); got != "web 10.61.0.1" {
		t.Errorf("after kill -9: [::1]:18091: %q", got)
	}
	d.must("sandbox", "rm", "-f", "web")
	checkFree(t, "tcp", 18090)
	checkFree(t, "udp", 18090)
}

// TestPublishDualStackLoopback: [::1]:PORT reaches a dual-stack sandbox too. The ip6
// output DNAT used to translate ::1 to the sandbox's IPv6 address, which a packet from ::1
// cannot reach (IPv6 has no route_localnet); ::1 is now left to the daemon's proxy socket.
func TestPublishDualStackLoopback(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--ipv6", "--subnet", "10.64.0.0/24", "--subnet", "fd00:64::/64", "ds")
	d.must("sandbox", "create", "--name", "dual", "--network", "ds", "-p", "18095:7000", "-p", "18095:7000/udp")
	echoIn(t, "dual", "/run/netns/dual")
	for _, c := range []struct{ proto, addr string }{
		{"tcp", "[::1]:18095"}, {"udp", "[::1]:18095"}, {"tcp", "127.0.0.1:18095"},
	} {
		if got := reach(t, "", c.proto, c.addr); !strings.HasPrefix(got, "dual ") {
			t.Errorf("%s %s: %q, want the sandbox's answer", c.proto, c.addr, got)
		}
	}
}
