package dnsd

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"

	"berth/internal/nsutil"
	"berth/internal/testns"
)

// dig6 is dig at [fd62:6572:7468::11] inside netns ns.
func dig6(t *testing.T, ns string, args ...string) string {
	t.Helper()
	cmd := append([]string{"ip", "netns", "exec", ns, "dig", "@" + serviceAddr6.String(), "+short", "+time=2", "+tries=1"}, args...)
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return "error: " + strings.TrimSpace(string(out))
	}
	return strings.TrimSpace(string(out))
}

// nftTable lists table FAMILY berth-dns in netns ns, or "" if there is none.
func nftTable(t *testing.T, ns, family string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", family, natTable).CombinedOutput()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// TestServeV6: a served sandbox answers on [fd62:6572:7468::11]:53 over UDP and TCP, as on
// 127.0.0.11, and both tables are in place and read back as installNAT made them.
func TestServeV6(t *testing.T) {
	testns.Require(t)
	for _, fresh := range []bool{true, false} {
		name := map[bool]string{true: "dnsd-v6new", false: "dnsd-v6"}[fresh]
		nsPath, ns := sandboxNS(t, name)
		st := newFixture(t, nsPath)
		s := New(Config{Store: st, Log: testLogger(t)})
		serve := s.Serve
		if fresh {
			serve = s.ServeNew
		}
		if err := serve(sandboxRecord(t, st, clientID)); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"web"}, {"+tcp", "web"}, {"+notcp", "WWW"}} {
			if got := dig6(t, ns, args...); got != "172.30.0.3" {
				t.Errorf("%s: dig @%s %v: got %q", name, serviceAddr6, args, got)
			}
			if got := dig(t, ns, args...); got != "172.30.0.3" {
				t.Errorf("%s: dig @127.0.0.11 %v: got %q", name, args, got)
			}
		}
		v4, v6 := nftTable(t, ns, "ip"), nftTable(t, ns, "ip6")
		if strings.Count(v6, "dnat to") != 2 || strings.Count(v6, "snat to") != 2 || !strings.Contains(v6, serviceAddr6.String()) {
			t.Errorf("%s: ip6 table:\n%s\nwant the 4 rules", name, v6)
		}
		udp, tcp := s.listeners(clientID)
		want := natPorts{uint16(udp.LocalAddr().(*net.UDPAddr).Port), uint16(tcp.Addr().(*net.TCPAddr).Port)}
		if got, ok := readNATIn(t, nsPath, true); !ok || got != want {
			t.Errorf("%s: readNAT: %v %v; want %v true\n%s\n%s", name, got, ok, want, v4, v6)
		}
		s.Stop(clientID)
		if v4, v6 := nftTable(t, ns, "ip"), nftTable(t, ns, "ip6"); v4 != "" || v6 != "" {
			t.Errorf("%s: tables after Stop:\n%s\n%s\nwant none", name, v4, v6)
		}
		if out := run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", "lo"); strings.Contains(out, serviceAddr6.String()) {
			t.Errorf("%s: %s still on lo after Stop:\n%s", name, serviceAddr6, out)
		}
		s.Close()
	}
}

// readNATIn is readNAT in the netns at nsPath.
func readNATIn(t *testing.T, nsPath string, v6 bool) (natPorts, bool) {
	t.Helper()
	h, err := nsutil.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return readNAT(c, v6)
}
