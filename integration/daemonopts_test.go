package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/internal/tlstest"
)

// ipOut runs ip with args in the test's netns (or, with -n NS, in a sandbox's) and returns
// its output.
func ipOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDaemonOptions starts the daemon with dockerd's default bridge and pool options and
// checks each in the kernel: the bridge's address and MTU, a sandbox's address, MTU and
// route, the subnets of new networks, and the masquerade set of the ruleset.
func TestDaemonOptions(t *testing.T) {
	d := newDaemon(t)
	startOutside(t)
	// The outside host routes the default bridge's subnets back, so that traffic that is
	// not masqueraded still gets an answer, which shows its source.
	run(t, "ip", "-n", "outside", "route", "add", "192.168.5.0/24", "via", "192.0.2.1")
	run(t, "ip", "-n", "outside", "route", "add", "192.168.6.0/24", "via", "192.0.2.1")
	d.start("--bip", "192.168.5.1/24", "--fixed-cidr", "192.168.5.128/25", "--mtu", "1400",
		"--default-address-pool", "base=10.123.0.0/16,size=24", "--ip-masq=false")

	if got := ipOut(t, "-o", "-4", "addr", "show", "dev", "berth0"); !strings.Contains(got, "inet 192.168.5.1/24 ") {
		t.Errorf("berth0 addresses: %s; want 192.168.5.1/24 (--bip)", got)
	}
	if got := ipOut(t, "-o", "link", "show", "dev", "berth0"); !strings.Contains(got, " mtu 1400 ") {
		t.Errorf("berth0: %s; want mtu 1400", got)
	}
	d.must("sandbox", "create", "--name", "a")
	if got := ipOut(t, "-n", "a", "-o", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(got, "inet 192.168.5.128/24 ") {
		t.Errorf("sandbox a eth0: %s; want 192.168.5.128/24 (the first of --fixed-cidr)", got)
	}
	if got := ipOut(t, "-n", "a", "-o", "link", "show", "dev", "eth0"); !strings.Contains(got, " mtu 1400 ") {
		t.Errorf("sandbox a eth0: %s; want mtu 1400", got)
	}
	if got := ipOut(t, "-n", "a", "route", "show", "default"); !strings.Contains(got, "default via 192.168.5.1 dev eth0") {
		t.Errorf("sandbox a default route: %s; want via 192.168.5.1", got)
	}
	for i, want := range []string{"10.123.0.0/24", "10.123.1.0/24"} {
		name := fmt.Sprintf("pool%d", i)
		d.must("network", "create", name)
		if got := d.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", name); got != want {
			t.Errorf("network %s: subnet %s, want %s (--default-address-pool)", name, got, want)
		}
	}
	d.must("sandbox", "create", "--name", "b", "--network", "pool0")
	echoIn(t, "a", "/run/netns/a")
	// --ip-masq=false: the default bridge's traffic leaves with its own source address,
	// a user-defined network's is masqueraded still (dockerd does the same).
	if got := reach(t, "/run/netns/a", "tcp", "192.0.2.2:7000"); got != "outside 192.168.5.128" {
		t.Errorf("a -> outside: %q, want the sandbox's own address (no masquerade)", got)
	}
	if got := reach(t, "/run/netns/b", "tcp", "192.0.2.2:7000"); got != "outside 192.0.2.1" {
		t.Errorf("b -> outside: %q, want the daemon's address (masqueraded)", got)
	}
	rules := nftTable(t)
	if !strings.Contains(rules, "10.123.0.0/24") || strings.Contains(rules, "192.168.5.0/24") {
		t.Errorf("table ip berth: want 10.123.0.0/24 and not 192.168.5.0/24 in it:\n%s", rules)
	}

	// A restart with another --bip while a sandbox is on the bridge keeps the bridge as it
	// is (dockerd: "There are old running containers, the network config will not take
	// affect"), and the sandbox keeps working.
	d.stop()
	d.start("--bip", "192.168.6.1/24")
	if got := ipOut(t, "-o", "-4", "addr", "show", "dev", "berth0"); !strings.Contains(got, "inet 192.168.5.1/24 ") {
		t.Errorf("berth0 after a changed --bip under a sandbox: %s; want 192.168.5.1/24 kept", got)
	}
	if !strings.Contains(d.log.String(), "sandboxes are on the default bridge") {
		t.Errorf("no warning in the daemon log:\n%s", d.log)
	}
	if err := ping(t, "a", "192.168.5.1"); err != nil {
		t.Error(err)
	}
	// With the sandbox gone, the next start re-makes the bridge with the new --bip and the
	// kernel's MTU.
	d.must("sandbox", "rm", "-f", "a")
	d.stop()
	d.start("--bip", "192.168.6.1/24")
	if got := ipOut(t, "-o", "-4", "addr", "show", "dev", "berth0"); !strings.Contains(got, "inet 192.168.6.1/24 ") || strings.Contains(got, "192.168.5.1") {
		t.Errorf("berth0 after the sandbox left: %s; want only 192.168.6.1/24", got)
	}
	if got := ipOut(t, "-o", "link", "show", "dev", "berth0"); !strings.Contains(got, " mtu 1500 ") {
		t.Errorf("berth0 without --mtu: %s; want mtu 1500", got)
	}
	d.must("sandbox", "create", "--name", "c")
	if got := ipOut(t, "-n", "c", "-o", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(got, "inet 192.168.6.2/24 ") {
		t.Errorf("sandbox c eth0: %s; want 192.168.6.2/24", got)
	}
	// Masquerade is back on by default.
	echoIn(t, "c", "/run/netns/c")
	if got := reach(t, "/run/netns/c", "tcp", "192.0.2.2:7000"); got != "outside 192.0.2.1" {
		t.Errorf("c -> outside: %q, want the daemon's address (masqueraded)", got)
	}
}

// TestDaemonNoIPTables: --iptables=false makes berth install no nftables rules at all,
// remove its tables of an earlier run, and carry published ports through the proxy.
func TestDaemonNoIPTables(t *testing.T) {
	d := newDaemon(t)
	startOutside(t)
	run(t, "ip", "-n", "outside", "route", "add", "172.17.0.0/16", "via", "192.0.2.1")
	d.start() // with rules first: the next start must take them away
	if tables := nftTables(t); !strings.Contains(tables, "table ip berth") {
		t.Fatalf("with --iptables: no berth table:\n%s", tables)
	}
	d.stop()
	d.start("--iptables=false")
	// The user table (inet berth) is the admin's and stays; every other berth table goes.
	for _, line := range strings.Split(nftTables(t), "\n") {
		if strings.Contains(line, "berth") && line != "table inet berth" {
			t.Errorf("with --iptables=false: %s still there", line)
		}
	}
	d.must("network", "create", "--subnet", "10.61.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app", "-p", "8080:7000")
	echoIn(t, "web", "/run/netns/web")
	for _, line := range strings.Split(nftTables(t), "\n") {
		if strings.Contains(line, "berth") && line != "table inet berth" {
			t.Errorf("after a create with --iptables=false: %s", line)
		}
	}
	// The published port works without DNAT: the proxy answers on every host address
	// and connects from the gateway, so the sandbox sees the gateway as the peer.
	for _, c := range []struct{ from, addr string }{{"", "127.0.0.1:8080"}, {"/run/netns/outside", "192.0.2.1:8080"}} {
		if got := reach(t, c.from, "tcp", c.addr); got != "web 10.61.0.1" {
			t.Errorf("tcp %s from %q: %q, want \"web 10.61.0.1\" (through the proxy)", c.addr, c.from, got)
		}
	}
	// No masquerade either: the outside host sees the sandbox's address, and answers it
	// only because it has a route back.
	run(t, "ip", "-n", "outside", "route", "add", "10.61.0.0/24", "via", "192.0.2.1")
	if got := reach(t, "/run/netns/web", "tcp", "192.0.2.2:7000"); got != "outside 10.61.0.2" {
		t.Errorf("web -> outside: %q, want the sandbox's own address (no NAT)", got)
	}
}

func nftTables(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDaemonTCPTLS runs the daemon on tcp:// with mutual TLS and drives it with the CLI:
// with the client's certificate (flags or BERTH_CERT_PATH) it answers; without one, or
// with one of another CA, the client gets one line and nothing; without --tlsverify the
// daemon refuses to start.
func TestDaemonTCPTLS(t *testing.T) {
	d := newDaemon(t)
	f := tlstest.Write(t, t.TempDir())
	bin := d.bin
	// tcp:// without TLS: one line, no start.
	out, err := exec.Command(bin, "daemon", "--root", d.root, "--socket", "tcp://127.0.0.1:2376").CombinedOutput()
	if want := "invalid socket \"tcp://127.0.0.1:2376\": tcp:// needs mutual TLS: --tlsverify --tlscacert FILE --tlscert FILE --tlskey FILE\n"; err == nil || string(out) != want {
		t.Errorf("tcp:// without TLS: %v, %q; want %q", err, out, want)
	}

	addr := freeTCPAddr(t)
	host := "tcp://" + addr
	daemonCmd := exec.Command(bin, "daemon", "--root", d.root, "--socket", host, "--resolv-conf", d.resolv,
		"--tlsverify", "--tlscacert", f.CA, "--tlscert", f.ServerCert, "--tlskey", f.ServerKey)
	var log syncBuffer
	daemonCmd.Stdout, daemonCmd.Stderr = &log, &log
	if err := daemonCmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { daemonCmd.Wait(); close(done) }()
	t.Cleanup(func() {
		daemonCmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			daemonCmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	cli := func(env []string, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, bin, args...)
		c.Env = append(os.Environ(), env...)
		var o, e bytes.Buffer
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		return o.String(), e.String(), err
	}
	tlsFlags := []string{"-H", host, "--tlsverify", "--tlscacert", f.CA, "--tlscert", f.ClientCert, "--tlskey", f.ClientKey}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := cli(nil, append(tlsFlags, "network", "ls", "-q")...); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon on %s did not answer within 10s:\n%s", host, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, e, err := cli(nil, append(tlsFlags, "network", "create", "--subnet", "10.62.0.0/24", "remote")...); err != nil {
		t.Fatalf("network create over tcp://: %v: %s", err, e)
	}
	// BERTH_HOST and BERTH_CERT_PATH instead of flags.
	o, e, err := cli([]string{"BERTH_HOST=" + host, "BERTH_CERT_PATH=" + f.Dir}, "network", "ls", "--format", "{{.Name}}")
	if err != nil || !strings.Contains(o, "remote") {
		t.Errorf("network ls with BERTH_CERT_PATH: %v, %q, %q; want remote listed", err, o, e)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no certificate files", []string{"-H", host, "network", "ls"},
			"tcp:// needs mutual TLS: --tlscacert, --tlscert and --tlskey (or BERTH_CERT_PATH)"},
		{"certificate of another CA", []string{"-H", host, "--tlscacert", f.CA, "--tlscert", f.ForeignCert, "--tlskey", f.ForeignKey, "network", "ls"},
			"remote error: tls: certificate required"},
		{"daemon not trusted", []string{"-H", host, "--tlscacert", f.ForeignCA, "--tlscert", f.ClientCert, "--tlskey", f.ClientKey, "network", "ls"},
			"certificate signed by unknown authority"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, e, err := cli([]string{"BERTH_CERT_PATH="}, c.args...)
			e = strings.TrimRight(e, "\n")
			if err == nil || o != "" || strings.Contains(e, "\n") || !strings.Contains(e, c.want) {
				t.Errorf("got %v, stdout %q, stderr %q; want one line with %q", err, o, e, c.want)
			}
		})
	}
	// A plain TCP client gets no API answer.
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		fmt.Fprintf(conn, "GET /v1/networks HTTP/1.0\r\n\r\n")
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 512)
		n, _ := conn.Read(b)
		conn.Close()
		if strings.Contains(string(b[:n]), "remote") {
			t.Errorf("plain HTTP got the network list: %q", b[:n])
		}
	}
	if _, e, err := cli(nil, append(tlsFlags, "network", "rm", "remote")...); err != nil {
		t.Errorf("network rm over tcp://: %v: %s", err, e)
	}
}

// freeTCPAddr returns a loopback address with a port nothing listens on now.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
