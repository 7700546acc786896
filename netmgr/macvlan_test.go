package netmgr

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"berth/api"
	"berth/store"
)

// onParentNet is a macvlan (or ipvlan) create request with options opts.
func onParentNet(name, driver, subnet string, opts ...string) api.NetworkCreate {
	req := api.NetworkCreate{Name: name, Driver: driver, Options: map[string]string{}}
	if subnet != "" {
		req.Subnets = []string{subnet}
	}
	for _, kv := range opts {
		k, v, _ := strings.Cut(kv, "=")
		req.Options[k] = v
	}
	return req
}

// TestValidateSubIfOptions: every option fault of a macvlan or ipvlan network is one line
// naming the option. The mode texts are dockerd 20.10's (asked: docker network create -d
// macvlan -o macvlan_mode=bogus / =PRIVATE, -d ipvlan -o ipvlan_mode=l4); dockerd 20.10
// took ipvlan_flag=x and foo=bar without a word, which berth refuses on purpose (a typo
// would give another mode than asked).
func TestValidateSubIfOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  api.NetworkCreate
		want string
	}{
		{"macvlan mode", onParentNet("n", "macvlan", "", "parent=eth0", "macvlan_mode=bogus"),
			`invalid opt "macvlan_mode=bogus": requested macvlan mode 'bogus' is not valid, 'bridge' mode is the macvlan driver default`},
		{"macvlan mode case", onParentNet("n", "macvlan", "", "parent=eth0", "macvlan_mode=PRIVATE"),
			`invalid opt "macvlan_mode=PRIVATE": requested macvlan mode 'PRIVATE' is not valid, 'bridge' mode is the macvlan driver default`},
		{"ipvlan mode", onParentNet("n", "ipvlan", "", "parent=eth0", "ipvlan_mode=l4"),
			`invalid opt "ipvlan_mode=l4": requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default`},
		{"ipvlan flag", onParentNet("n", "ipvlan", "", "parent=eth0", "ipvlan_flag=x"),
			`invalid opt "ipvlan_flag=x": requested ipvlan flag 'x' is not valid, 'bridge' is the ipvlan driver default`},
		{"unknown key", onParentNet("n", "macvlan", "", "parent=eth0", "foo=bar"),
			`invalid opt "foo=bar": not an option of the macvlan driver`},
		{"macvlan mode on ipvlan", onParentNet("n", "ipvlan", "", "parent=eth0", "macvlan_mode=bridge"),
			`invalid opt "macvlan_mode=bridge": not an option of the ipvlan driver`},
		{"ipvlan flag on macvlan", onParentNet("n", "macvlan", "", "parent=eth0", "ipvlan_flag=bridge"),
			`invalid opt "ipvlan_flag=bridge": not an option of the macvlan driver`},
		{"bridge option", onParentNet("n", "macvlan", "", "parent=eth0", OptBridgeName+"=br0"),
			`invalid opt "com.docker.network.bridge.name=br0": not an option of the macvlan driver`},
		{"shim on ipvlan", onParentNet("n", "ipvlan", "", "parent=eth0", "berth.host_shim=true"),
			`invalid opt "berth.host_shim=true": the host shim is a macvlan: an ipvlan child shares the parent's MAC, use a macvlan network`},
		{"shim not a bool", onParentNet("n", "macvlan", "", "parent=eth0", "berth.host_shim=maybe"),
			`invalid opt "berth.host_shim=maybe": want true or false`},
		{"shim in private mode", onParentNet("n", "macvlan", "", "parent=eth0", "macvlan_mode=private", "berth.host_shim=true"),
			`invalid opt "berth.host_shim=true": the host shim reaches sandboxes in macvlan mode bridge only, not private`},
		{"mtu", onParentNet("n", "macvlan", "", "parent=eth0", OptMTU+"=9"),
			`invalid opt "com.docker.network.driver.mtu=9": MTU must be an integer between 68 and 65535`},
		{"empty parent", onParentNet("n", "macvlan", "", "parent="),
			`invalid opt "parent=": must not be empty`},
		{"long parent", onParentNet("n", "macvlan", "", "parent=averyveryverylongname"),
			`invalid opt "parent=averyveryverylongname": longer than 15 bytes`},
		{"parent with slash", onParentNet("n", "macvlan", "", "parent=eth0/1"),
			`invalid opt "parent=eth0/1": not a valid interface name`},
		{"vlan 0", onParentNet("n", "macvlan", "", "parent=eth0.0"),
			`invalid opt "parent=eth0.0": vlan id must be between 1-4094, received: 0`},
		{"vlan 4095", onParentNet("n", "macvlan", "", "parent=eth0.4095"),
			`invalid opt "parent=eth0.4095": vlan id must be between 1-4094, received: 4095`},
		{"empty key", onParentNet("n", "macvlan", "", "=x"),
			`invalid opt "=x": empty key`},
		{"two faults: the first key", onParentNet("n", "macvlan", "", "zz=1", "macvlan_mode=bad"),
			`invalid opt "macvlan_mode=bad": requested macvlan mode 'bad' is not valid, 'bridge' mode is the macvlan driver default`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateNetworkCreate(tc.req)
			var inv *InvalidError
			if err == nil || !errors.As(err, &inv) || err.Error() != tc.want {
				t.Fatalf("got %v; want %s", err, tc.want)
			}
		})
	}
}

func TestValidateSubIfDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  api.NetworkCreate
		want SubIfOptions
	}{
		{"macvlan", onParentNet("n", "macvlan", "", "parent=eth0"),
			SubIfOptions{Driver: "macvlan", Parent: store.Parent{Name: "eth0"}, Mode: "bridge"}},
		{"macvlan private", onParentNet("n", "macvlan", "", "parent=eth0", "macvlan_mode=private", "berth.host_shim=0"),
			SubIfOptions{Driver: "macvlan", Parent: store.Parent{Name: "eth0"}, Mode: "private"}},
		{"macvlan shim", onParentNet("n", "macvlan", "", "parent=eth0", "berth.host_shim=1"),
			SubIfOptions{Driver: "macvlan", Parent: store.Parent{Name: "eth0"}, Mode: "bridge", HostShim: true}},
		{"ipvlan", onParentNet("n", "ipvlan", "", "parent=eth0"),
			SubIfOptions{Driver: "ipvlan", Parent: store.Parent{Name: "eth0"}, Mode: "l2", Flag: "bridge"}},
		{"ipvlan l3s vepa", onParentNet("n", "ipvlan", "", "parent=eth0", "ipvlan_mode=l3s", "ipvlan_flag=vepa"),
			SubIfOptions{Driver: "ipvlan", Parent: store.Parent{Name: "eth0"}, Mode: "l3s", Flag: "vepa"}},
		{"vlan", onParentNet("n", "macvlan", "", "parent=eth0.20"),
			SubIfOptions{Driver: "macvlan", Parent: store.Parent{Name: "eth0.20", Link: "eth0", VLAN: 20}, Mode: "bridge"}},
		{"dotted name", onParentNet("n", "macvlan", "", "parent=br.lan"),
			SubIfOptions{Driver: "macvlan", Parent: store.Parent{Name: "br.lan"}, Mode: "bridge"}},
		{"no parent", onParentNet("n", "macvlan", ""),
			SubIfOptions{Driver: "macvlan", Mode: "bridge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ValidateNetworkCreate(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if s.Sub == nil || *s.Sub != tc.want {
				t.Errorf("got %+v; want %+v", s.Sub, tc.want)
			}
			if !maps.Equal(s.Options, tc.req.Options) {
				t.Errorf("options %v; want them as given, %v", s.Options, tc.req.Options)
			}
		})
	}
}

// TestSubIfNetworkCreateRemove: the parent is checked before anything is recorded, berth
// makes a missing VLAN sub-interface and an internal parent and records that it did, and
// network rm deletes only those.
func TestSubIfNetworkCreateRemove(t *testing.T) {
	m, k := newTestManager(t)
	k.links["eth0.30"] = "vlan" // the user's own VLAN device
	for _, tc := range []struct {
		name        string
		req         api.NetworkCreate
		parent      string
		created     bool
		internal    bool
		keptAfterRm bool
	}{
		{"plain parent", onParentNet("plain", "macvlan", "10.60.0.0/24", "parent=eth0"), "eth0", false, false, true},
		{"vlan made", onParentNet("vlan", "macvlan", "10.61.0.0/24", "parent=eth0.20"), "eth0.20", true, false, false},
		{"vlan there", onParentNet("vlan30", "ipvlan", "10.62.0.0/24", "parent=eth0.30"), "eth0.30", false, false, true},
		{"internal", onParentNet("int", "macvlan", "10.63.0.0/24"), "", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := mustNetwork(t, m, tc.req)
			parent := tc.parent
			if tc.internal {
				parent = InternalParentName(n.ID)
			}
			if n.Driver != tc.req.Driver || n.Bridge != "" || n.Bridged() || !n.OnParent() {
				t.Errorf("driver %s bridge %q bridged %v", n.Driver, n.Bridge, n.Bridged())
			}
			if n.Parent.Name != parent || n.ParentCreated != tc.created || n.Parent.Internal != tc.internal || n.Internal != tc.internal {
				t.Errorf("parent %+v created %v internal %v; want %s created %v internal %v",
					n.Parent, n.ParentCreated, n.Internal, parent, tc.created, tc.internal)
			}
			if _, ok := k.links[parent]; !ok {
				t.Fatalf("parent %s not there after create", parent)
			}
			if tc.internal {
				if k.links[PeerName(parent)] != "veth-peer" {
					t.Errorf("internal parent's peer %s: %q", PeerName(parent), k.links[PeerName(parent)])
				}
				if s, ok := m.cfg.Store.Snapshot().Network(n.ID); ok != nil || len(s.Subnets) != 1 || !s.Subnets[0].Gateway.IsValid() {
					t.Errorf("internal network subnets %+v", s.Subnets)
				}
			}
			if err := m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: n.Name}); err != nil {
				t.Fatal(err)
			}
			if _, ok := k.links[parent]; ok != tc.keptAfterRm {
				t.Errorf("parent %s there after rm: %v; want %v", parent, ok, tc.keptAfterRm)
			}
			if tc.internal {
				if _, ok := k.links[PeerName(parent)]; ok {
					t.Errorf("internal parent's peer left after rm")
				}
			}
		})
	}
	if _, ok := k.links["eth0"]; !ok {
		t.Errorf("eth0 deleted")
	}
}

// TestSubIfConfigFrom: a macvlan network made --config-from a configuration network takes
// its parent and mode from there, as dockerd 20.10 does (asked: docker network create
// --config-only --subnet 10.90.0.0/24 -o parent=eth0 -o macvlan_mode=private cfgmv, then
// -d macvlan --config-from cfgmv mvc: Options {"macvlan_mode":"private","parent":"eth0"};
// -d macvlan --config-only gives a configuration network of driver null).
func TestSubIfConfigFrom(t *testing.T) {
	m, _ := newTestManager(t)
	cfg := mustNetwork(t, m, api.NetworkCreate{Name: "cfgmv", Driver: "macvlan", ConfigOnly: true, Subnets: []string{"10.90.0.0/24"},
		Options: map[string]string{"parent": "eth0", "macvlan_mode": "private"}})
	if cfg.Driver != store.DriverNull || cfg.OnParent() {
		t.Errorf("configuration network driver %s", cfg.Driver)
	}
	n := mustNetwork(t, m, api.NetworkCreate{Name: "mvc", Driver: "macvlan", ConfigFrom: "cfgmv"})
	if n.Driver != "macvlan" || n.Parent.Name != "eth0" || n.Mode != "private" || n.Subnets[0].Subnet.String() != "10.90.0.0/24" {
		t.Errorf("network from the configuration: %+v", n)
	}
	mustNetwork(t, m, api.NetworkCreate{Name: "cfgbad", ConfigOnly: true, Subnets: []string{"10.91.0.0/24"},
		Options: map[string]string{"parent": "eth0", "macvlan_mode": "bogus"}})
	_, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "mvbad", Driver: "macvlan", ConfigFrom: "cfgbad"})
	if want := `invalid opt "macvlan_mode=bogus": requested macvlan mode 'bogus' is not valid, 'bridge' mode is the macvlan driver default`; err == nil || err.Error() != want {
		t.Errorf("got %v; want %s", err, want)
	}
}

// TestSubIfNetworkCreateRefused: one line naming the field, and nothing recorded or made.
func TestSubIfNetworkCreateRefused(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.50.0.0/24"}})
	k.noModule["8021q"] = true
	for _, tc := range []struct {
		name string
		req  api.NetworkCreate
		want string
	}{
		{"missing parent", onParentNet("x", "macvlan", "10.70.0.0/24", "parent=eth9"),
			`invalid opt "parent=eth9": parent interface eth9 not found`},
		{"missing vlan link", onParentNet("x", "macvlan", "10.70.0.0/24", "parent=eth9.20"),
			`invalid opt "parent=eth9.20": parent interface eth9 of VLAN 20 not found`},
		{"overlap", onParentNet("x", "macvlan", "10.50.0.0/25", "parent=eth0"),
			`invalid subnet "10.50.0.0/25": overlaps the subnet of network app`},
		{"gateway outside", func() api.NetworkCreate {
			r := onParentNet("x", "macvlan", "10.53.0.0/24", "parent=eth0")
			r.Gateways = []string{"10.54.0.1"}
			return r
		}(), `invalid gateway "10.54.0.1": not in any subnet of the network`},
		{"bridge as parent", onParentNet("x", "macvlan", "10.70.0.0/24", "parent="+DefaultBridge),
			`invalid opt "parent=berth0": berth0 is a device berth made for its own networks, not a parent interface`},
		// dockerd 20.10's words (asked): the kernel takes no macvlan or ipvlan on loopback.
		{"loopback as parent", onParentNet("x", "macvlan", "10.70.0.0/24", "parent=lo"),
			`invalid opt "parent=lo": loopback interface is not a valid macvlan parent link`},
		{"loopback as ipvlan parent", onParentNet("x", "ipvlan", "10.70.0.0/24", "parent=lo"),
			`invalid opt "parent=lo": loopback interface is not a valid ipvlan parent link`},
		// A VLAN of either is refused the same: the lower link is what the kernel is given.
		{"VLAN on loopback", onParentNet("x", "macvlan", "10.70.0.0/24", "parent=lo.20"),
			`invalid opt "parent=lo.20": loopback interface is not a valid macvlan parent link`},
		{"VLAN on a bridge of berth's", onParentNet("x", "macvlan", "10.70.0.0/24", "parent="+DefaultBridge+".20"),
			`invalid opt "parent=berth0.20": berth0 is a device berth made for its own networks, not a parent interface`},
		{"name taken", onParentNet("app", "macvlan", "10.70.0.0/24", "parent=eth0"),
			`network with name app already exists: conflict`},
		// The kernel's own error (fake: the real one's text), after the checks.
		{"no 8021q", onParentNet("x", "macvlan", "10.70.0.0/24", "parent=eth0.20"),
			`create network "x": parent eth0.20: create: 802.1q VLANs need the 8021q kernel module (modprobe 8021q): operation not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(m.cfg.Store.Snapshot().Networks())
			links := len(k.links)
			_, err := m.CreateNetwork(t.Context(), tc.req)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has more than one line")
			}
			if got := len(m.cfg.Store.Snapshot().Networks()); got != before {
				t.Errorf("%d networks after a refused create, %d before", got, before)
			}
			if len(k.links) != links {
				t.Errorf("links changed: %v", k.links)
			}
		})
	}
}

// TestParentConflicts: which networks may share a parent.
func TestParentConflicts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first api.NetworkCreate
		next  api.NetworkCreate
		want  string // "" = created
	}{
		{"macvlan same mode", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=eth0", "macvlan_mode=bridge"), ""},
		{"macvlan private twice", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0", "macvlan_mode=private"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=eth0", "macvlan_mode=private"), ""},
		{"macvlan other mode", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=eth0", "macvlan_mode=private"),
			`invalid opt "parent=eth0": network a is already using parent interface eth0 in macvlan mode bridge`},
		{"passthru twice", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0", "macvlan_mode=passthru"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=eth0", "macvlan_mode=passthru"),
			`invalid opt "parent=eth0": network a is already using parent interface eth0`},
		{"macvlan then ipvlan", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0"),
			onParentNet("b", "ipvlan", "10.2.0.0/24", "parent=eth0"),
			`invalid opt "parent=eth0": network a is already using parent interface eth0`},
		{"ipvlan then macvlan", onParentNet("a", "ipvlan", "10.1.0.0/24", "parent=eth0"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=eth0"),
			`invalid opt "parent=eth0": network a is already using parent interface eth0`},
		// dockerd 20.10 (asked): "network di-b2a589558f1c is already using parent interface lan0".
		{"ipvlan twice", onParentNet("a", "ipvlan", "10.1.0.0/24", "parent=eth0"),
			onParentNet("b", "ipvlan", "10.2.0.0/24", "parent=eth0"),
			`invalid opt "parent=eth0": network a is already using parent interface eth0`},
		{"ipvlan other mode", onParentNet("a", "ipvlan", "10.1.0.0/24", "parent=eth0"),
			onParentNet("b", "ipvlan", "10.2.0.0/24", "parent=eth0", "ipvlan_mode=l3"),
			`invalid opt "parent=eth0": network a is already using parent interface eth0 in ipvlan mode l2`},
		{"vlan twice", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0.20"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=eth0.20"),
			`invalid opt "parent=eth0.20": network a is already using parent interface eth0.20`},
		{"vlan and its link", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0.20"),
			onParentNet("b", "ipvlan", "10.2.0.0/24", "parent=eth0"), ""},
		{"two vlans", onParentNet("a", "macvlan", "10.1.0.0/24", "parent=eth0.20"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=eth0.21"), ""},
		{"two internal", onParentNet("a", "macvlan", "10.1.0.0/24"), onParentNet("b", "ipvlan", "10.2.0.0/24"), ""},
		{"another's internal parent", onParentNet("a", "macvlan", "10.1.0.0/24"),
			onParentNet("b", "macvlan", "10.2.0.0/24", "parent=INTERNAL"),
			`invalid opt "parent=INTERNAL": INTERNAL is a device berth made for its own networks, not a parent interface`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestManager(t)
			a := mustNetwork(t, m, tc.first)
			next := tc.next
			if next.Options["parent"] == "INTERNAL" {
				next.Options["parent"] = a.Parent.Name
				tc.want = strings.ReplaceAll(tc.want, "INTERNAL", a.Parent.Name)
			}
			_, err := m.CreateNetwork(t.Context(), next)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestSubIfIPAM: sandboxes never get the gateway, an aux address or the shim's; the shim
// takes the top of the IP range.
func TestSubIfIPAM(t *testing.T) {
	m, _ := newTestManager(t)
	req := onParentNet("lan", "macvlan", "10.9.0.0/29", "parent=eth0", "berth.host_shim=true")
	req.AuxAddresses = map[string]string{"router": "10.9.0.2"}
	n := mustNetwork(t, m, req)
	if want := []netip.Addr{netip.MustParseAddr("10.9.0.6")}; !slices.Equal(n.ShimAddrs, want) {
		t.Fatalf("shim addresses %v; want %v", n.ShimAddrs, want)
	}
	var got []string
	for _, name := range []string{"a", "b", "c"} {
		_, ep := mustSandbox(t, m, api.SandboxCreate{Name: name, Networks: []string{"lan"}})
		got = append(got, ep.IPv4.String())
	}
	if want := []string{"10.9.0.3", "10.9.0.4", "10.9.0.5"}; !slices.Equal(got, want) {
		t.Errorf("dynamic addresses %v; want %v", got, want)
	}
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "d", Networks: []string{"lan"}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a fourth sandbox on a /29 with gateway, aux and shim: %v; want full", err)
	}
	for _, tc := range []struct{ ip, want string }{
		{"10.9.0.6", `invalid ip "10.9.0.6": address already in use by the host shim of network lan`},
		{"10.9.0.2", `invalid ip "10.9.0.2": Address already in use (aux-address router)`},
		{"10.9.0.1", `invalid ip "10.9.0.1": reserved address of subnet 10.9.0.0/29 (network, broadcast or gateway)`},
	} {
		_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "e", Networks: []string{"lan"}, IPv4: tc.ip})
		if err == nil || err.Error() != tc.want {
			t.Errorf("--ip %s: %v; want %s", tc.ip, err, tc.want)
		}
	}

	// With an IP range, the shim takes its top, clear of the rest of the LAN.
	req = onParentNet("lan2", "macvlan", "192.168.7.0/24", "parent=eth0", "berth.host_shim=true")
	req.IPRanges = []string{"192.168.7.64/26"}
	n = mustNetwork(t, m, req)
	if want := []netip.Addr{netip.MustParseAddr("192.168.7.127")}; !slices.Equal(n.ShimAddrs, want) {
		t.Errorf("shim addresses %v; want %v", n.ShimAddrs, want)
	}
	_, ep := mustSandbox(t, m, api.SandboxCreate{Name: "f", Networks: []string{"lan2"}})
	if ep.IPv4.String() != "192.168.7.64" {
		t.Errorf("first dynamic address %s; want 192.168.7.64", ep.IPv4)
	}
}
