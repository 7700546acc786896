package firewall

import (
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*/*.golden")

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// defaultBridge is Docker's default network as berth names it.
func defaultBridge() Network {
	return Network{Bridge: "berth0", Subnets: []netip.Prefix{pfx("172.17.0.0/16")}, ICC: true, Masquerade: true}
}

func userNet(name string, subnets ...string) Network {
	nw := Network{Bridge: name, ICC: true, Masquerade: true}
	for _, s := range subnets {
		nw.Subnets = append(nw.Subnets, pfx(s))
	}
	return nw
}

var rulesetCases = []struct {
	name  string
	state State
}{
	{"empty", State{}},
	{"default bridge", State{Networks: []Network{defaultBridge()}}},
	{"published ports", State{
		Networks: []Network{defaultBridge()},
		Ports: []Port{
			{Proto: "tcp", HostPort: 8080, Addr: addr("172.17.0.2"), Port: 80, Bridge: "berth0"},
			{Proto: "udp", HostPort: 5353, Addr: addr("172.17.0.2"), Port: 53, Bridge: "berth0"},
			{Proto: "tcp", HostIP: addr("192.0.2.1"), HostPort: 8443, Addr: addr("172.17.0.3"), Port: 443, Bridge: "berth0"},
			{Proto: "tcp", HostIP: addr("0.0.0.0"), HostPort: 2222, Addr: addr("172.17.0.3"), Port: 22, Bridge: "berth0"},
		},
	}},
	{"icc off with links", State{
		Networks: []Network{{Bridge: "berth0", Subnets: []netip.Prefix{pfx("172.17.0.0/16")}, Masquerade: true}},
		Links: []Link{
			{Bridge: "berth0", From: addr("172.17.0.2"), To: addr("172.17.0.3"), Proto: "tcp", Port: 5432},
			{Bridge: "berth0", From: addr("172.17.0.2"), To: addr("172.17.0.3"), Proto: "udp", Port: 53},
		},
	}},
	{"icc off with ports", State{
		Networks: []Network{{Bridge: "berth0", Subnets: []netip.Prefix{pfx("172.17.0.0/16"), pfx("fd00:17::/64")}, Masquerade: true}},
		Ports: []Port{
			{Proto: "tcp", HostPort: 8080, Addr: addr("172.17.0.2"), Port: 80, Bridge: "berth0"},
			{Proto: "udp", HostPort: 8080, Addr: addr("172.17.0.2"), Port: 80, Bridge: "berth0"},
		},
	}},
	{"internal", State{
		Networks: []Network{
			defaultBridge(),
			{Bridge: "br-back", Subnets: []netip.Prefix{pfx("10.5.0.0/24")}, Internal: true, ICC: true, Masquerade: true},
		},
		Ports: []Port{{Proto: "tcp", HostPort: 8080, Addr: addr("10.5.0.2"), Port: 80, Bridge: "br-back"}},
	}},
	{"two networks dual stack", State{
		Networks: []Network{
			userNet("br-a", "10.1.0.0/24", "fd00:1::/64"),
			userNet("br-b", "10.2.0.0/24"),
		},
		Ports: []Port{
			{Proto: "tcp", HostPort: 80, Addr: addr("10.1.0.2"), Port: 80, Bridge: "br-a"},
			{Proto: "tcp", HostPort: 80, Addr: addr("fd00:1::2"), Port: 80, Bridge: "br-a"},
		},
	}},
	{"masquerade off", State{
		Networks: []Network{{Bridge: "br-nomasq", Subnets: []netip.Prefix{pfx("10.3.0.0/24")}, ICC: true}},
	}},
	{"host binding ipv4", State{
		Networks: []Network{{Bridge: "br-bind", Subnets: []netip.Prefix{pfx("10.4.0.0/24"), pfx("fd00:4::/64")},
			ICC: true, Masquerade: true, HostBindingIPv4: addr("192.0.2.1")}},
		Ports: []Port{
			{Proto: "tcp", HostPort: 8080, Addr: addr("10.4.0.2"), Port: 80, Bridge: "br-bind"},
			{Proto: "tcp", HostPort: 8080, Addr: addr("fd00:4::2"), Port: 80, Bridge: "br-bind"},                      // not published
			{Proto: "tcp", HostIP: addr("::1"), HostPort: 8081, Addr: addr("fd00:4::2"), Port: 80, Bridge: "br-bind"}, // explicit
		},
	}},
}

// TestRuleset compares the rendering of each state with testdata/TestRuleset/*.golden
// (go test ./netmgr/firewall/ -update rewrites them).
func TestRuleset(t *testing.T) {
	for _, tc := range rulesetCases {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Ruleset(tc.state)
			if err != nil {
				t.Fatal(err)
			}
			got := rs.String()
			path := filepath.Join("testdata", "TestRuleset", strings.ReplaceAll(tc.name, " ", "_")+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("ruleset differs from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// TestRulesetOrder checks that the rules depend on the set of inputs only.
func TestRulesetOrder(t *testing.T) {
	for _, tc := range rulesetCases {
		t.Run(tc.name, func(t *testing.T) {
			want := mustRuleset(t, tc.state).String()
			r := rand.New(rand.NewPCG(1, 2))
			for range 20 {
				s := State{Networks: slices.Clone(tc.state.Networks), Ports: slices.Clone(tc.state.Ports), Links: slices.Clone(tc.state.Links)}
				r.Shuffle(len(s.Networks), func(i, j int) { s.Networks[i], s.Networks[j] = s.Networks[j], s.Networks[i] })
				r.Shuffle(len(s.Ports), func(i, j int) { s.Ports[i], s.Ports[j] = s.Ports[j], s.Ports[i] })
				r.Shuffle(len(s.Links), func(i, j int) { s.Links[i], s.Links[j] = s.Links[j], s.Links[i] })
				s.Ports = append(s.Ports, s.Ports...) // duplicates are ignored
				if got := mustRuleset(t, s).String(); got != want {
					t.Fatalf("shuffled input: got\n%s\nwant\n%s", got, want)
				}
			}
		})
	}
}

func mustRuleset(t *testing.T, s State) *Rules {
	t.Helper()
	rs, err := Ruleset(s)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRulesetInvalid(t *testing.T) {
	nw := []Network{defaultBridge()}
	port := Port{Proto: "tcp", HostPort: 8080, Addr: addr("172.17.0.2"), Port: 80, Bridge: "berth0"}
	link := Link{Bridge: "berth0", From: addr("172.17.0.2"), To: addr("172.17.0.3"), Proto: "tcp", Port: 80}
	with := func(f func(p *Port)) []Port { p := port; f(&p); return []Port{p} }
	withLink := func(f func(l *Link)) []Link { l := link; f(&l); return []Link{l} }
	cases := []struct {
		name  string
		state State
		want  string
	}{
		{"no bridge name", State{Networks: []Network{{}}}, `network bridge "": want 1 to 15 bytes`},
		{"long bridge name", State{Networks: []Network{{Bridge: "br-0123456789abc"}}}, "want 1 to 15 bytes"},
		{"bridge twice", State{Networks: []Network{defaultBridge(), defaultBridge()}}, "listed twice"},
		{"bad subnet", State{Networks: []Network{{Bridge: "b", Subnets: []netip.Prefix{{}}}}}, "invalid subnet"},
		{"port proto", State{Networks: nw, Ports: with(func(p *Port) { p.Proto = "sctp" })}, `protocol "sctp"`},
		{"port zero", State{Networks: nw, Ports: with(func(p *Port) { p.HostPort = 0 })}, "port 0"},
		{"port no addr", State{Networks: nw, Ports: with(func(p *Port) { p.Addr = netip.Addr{} })}, "no sandbox address"},
		{"port families", State{Networks: nw, Ports: with(func(p *Port) { p.HostIP = addr("::1") })}, "different families"},
		{"port bridge", State{Networks: nw, Ports: with(func(p *Port) { p.Bridge = "br-x" })}, `bridge "br-x": not a network`},
		{"link proto", State{Networks: nw, Links: withLink(func(l *Link) { l.Proto = "" })}, `protocol ""`},
		{"link port", State{Networks: nw, Links: withLink(func(l *Link) { l.Port = 0 })}, "port 0"},
		{"link families", State{Networks: nw, Links: withLink(func(l *Link) { l.To = addr("fd00::3") })}, "one family"},
		{"link bridge", State{Networks: nw, Links: withLink(func(l *Link) { l.Bridge = "br-x" })}, "not a network"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Ruleset(tc.state)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v; want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRuleExprs checks the expressions behind a few renderings, where the netlink
// encoding is easy to get wrong.
func TestPrefixMask(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want []byte
	}{
		{"127.0.0.0/8", []byte{0xff, 0, 0, 0}},
		{"10.1.0.0/20", []byte{0xff, 0xff, 0xf0, 0}},
		{"fd00:1::/64", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}},
	} {
		if got := prefixMask(pfx(tc.p)); !slices.Equal(got, tc.want) {
			t.Errorf("prefixMask(%s): got %x; want %x", tc.p, got, tc.want)
		}
	}
}
