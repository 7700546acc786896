package netmgr

import (
	"errors"
	"net/netip"
	"testing"

	"berth/api"
	"berth/store"
)

// Docker's network options (issue 17 items 6 and 8): IPv6-only networks, --aux-address,
// --ip-range per subnet, --attachable, --config-only and --config-from. Each error text
// carries Docker's own words; where they come from is said per case: "oracle" is what
// Debian's dockerd 20.10 (shared/tools/docker-oracle.sh) or its docker CLI answered, "moby"
// names the moby source file for what dockerd 20.10 lacks (IPv6-only networks).

func boolp(b bool) *bool { return &b }

func TestValidateNetworkOptions(t *testing.T) {
	cases := []struct {
		name string
		req  api.NetworkCreate
		want string
	}{
		{"ipv6-only", api.NetworkCreate{Name: "n", IPv4: boolp(false), IPv6: true}, ""},
		{"ipv4 explicit", api.NetworkCreate{Name: "n", IPv4: boolp(true)}, ""},
		// moby daemon/libnetwork/drivers/bridge/bridge_linux.go, CreateNetwork.
		{"no family", api.NetworkCreate{Name: "n", IPv4: boolp(false)}, `invalid ipv4 "false": IPv4 or IPv6 must be enabled`},
		{"ipv4 subnet on ipv6-only", api.NetworkCreate{Name: "n", IPv4: boolp(false), IPv6: true, Subnets: []string{"10.1.0.0/24"}},
			`invalid subnet "10.1.0.0/24": IPv4 subnet on a network with --ipv4=false`},
		{"overlay ipv6-only", api.NetworkCreate{Name: "n", Driver: "overlay", IPv4: boolp(false), IPv6: true},
			`invalid ipv6 "true": overlay networks are IPv4-only`},
		{"aux not an address", api.NetworkCreate{Name: "n", AuxAddresses: map[string]string{"x": "bogus"}},
			`invalid aux-address "x=bogus": not an IP address`},
		{"ip-range not a CIDR", api.NetworkCreate{Name: "n", IPRanges: []string{"10.1.0.0/24", "bogus"}},
			`invalid ip-range "bogus": not a CIDR (like 172.30.0.0/24)`},
		// oracle: the daemon's answers to these flags on a --config-only network.
		{"config-only internal", api.NetworkCreate{Name: "n", ConfigOnly: true, Internal: true},
			`invalid config-only "true": configuration network can only contain network specific fields. ` +
				`Network operator fields like [ ingress | internal | attachable | scope ] are not supported.`},
		{"config-only attachable", api.NetworkCreate{Name: "n", ConfigOnly: true, Attachable: true},
			`invalid config-only "true": configuration network can only contain network specific fields. ` +
				`Network operator fields like [ ingress | internal | attachable | scope ] are not supported.`},
		{"config-only from", api.NetworkCreate{Name: "n", ConfigOnly: true, ConfigFrom: "cfg"},
			`invalid config-from "cfg": a configuration network cannot depend on another configuration network`},
		{"config-from subnet", api.NetworkCreate{Name: "n", ConfigFrom: "cfg", Subnets: []string{"10.81.0.0/24"}},
			`invalid config-from "cfg": user specified configurations are not supported if the network depends on a configuration network`},
		{"config-from label", api.NetworkCreate{Name: "n", ConfigFrom: "cfg", Labels: map[string]string{"a": "b"}},
			`invalid config-from "cfg": user specified configurations are not supported if the network depends on a configuration network`},
		{"config-from ipv6", api.NetworkCreate{Name: "n", ConfigFrom: "cfg", IPv6: true},
			`invalid config-from "cfg": user specified configurations are not supported if the network depends on a configuration network`},
		{"config-from opt", api.NetworkCreate{Name: "n", ConfigFrom: "cfg", Options: map[string]string{OptMTU: "1400"}},
			`invalid config-from "cfg": network driver options are not supported if the network depends on a configuration network`},
		{"config-from internal", api.NetworkCreate{Name: "n", ConfigFrom: "cfg", Internal: true, Attachable: true}, ""},
		// oracle (dockerd 20.10): with two faults, the operator fields are named before
		// --config-from, and user configuration before driver options.
		{"config-only from internal", api.NetworkCreate{Name: "n", ConfigOnly: true, ConfigFrom: "cfg", Internal: true},
			`invalid config-only "true": configuration network can only contain network specific fields. ` +
				`Network operator fields like [ ingress | internal | attachable | scope ] are not supported.`},
		{"config-from opt and subnet", api.NetworkCreate{Name: "n", ConfigFrom: "cfg", Options: map[string]string{OptMTU: "1400"},
			Subnets: []string{"10.82.0.0/24"}},
			`invalid config-from "cfg": user specified configurations are not supported if the network depends on a configuration network`},
		{"config-from opt and label", api.NetworkCreate{Name: "n", ConfigFrom: "cfg", Options: map[string]string{OptMTU: "1400"},
			Labels: map[string]string{"a": "b"}},
			`invalid config-from "cfg": user specified configurations are not supported if the network depends on a configuration network`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateNetworkCreate(tc.req)
			if got := errText(err); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestCreateNetworkIPAMErrors checks what needs the subnets (given or picked): where each
// range and aux address goes.
func TestCreateNetworkIPAMErrors(t *testing.T) {
	m, _ := newTestManager(t)
	sub := []string{"10.50.0.0/24"}
	cases := []struct {
		name string
		req  api.NetworkCreate
		want string
	}{
		// oracle (docker CLI): no matching subnet for aux-address 10.51.0.5
		{"aux outside", api.NetworkCreate{Subnets: sub, AuxAddresses: map[string]string{"a": "10.51.0.5"}},
			`invalid aux-address "a=10.51.0.5": no matching subnet for aux-address 10.51.0.5`},
		// oracle (dockerd): failed to allocate secondary ip address (a:10.57.0.1): Address already in use
		{"aux gateway", api.NetworkCreate{Subnets: sub, AuxAddresses: map[string]string{"a": "10.50.0.1"}},
			`invalid aux-address "a=10.50.0.1": failed to allocate secondary ip address (a:10.50.0.1): Address already in use`},
		{"aux network address", api.NetworkCreate{Subnets: sub, AuxAddresses: map[string]string{"a": "10.50.0.0"}},
			`invalid aux-address "a=10.50.0.0": failed to allocate secondary ip address (a:10.50.0.0): Address already in use`},
		{"aux broadcast", api.NetworkCreate{Subnets: sub, AuxAddresses: map[string]string{"x": "10.50.0.255"}},
			`invalid aux-address "x=10.50.0.255": failed to allocate secondary ip address (x:10.50.0.255): Address already in use`},
		{"aux twice", api.NetworkCreate{Subnets: sub, AuxAddresses: map[string]string{"x": "10.50.0.9", "y": "10.50.0.9"}},
			`invalid aux-address "y=10.50.0.9": failed to allocate secondary ip address (y:10.50.0.9): Address already in use`},
		{"aux v6 on ipv4 network", api.NetworkCreate{Subnets: sub, AuxAddresses: map[string]string{"x": "fd00::5"}},
			`invalid aux-address "x=fd00::5": no matching subnet for aux-address fd00::5`},
		// oracle (docker CLI): no matching subnet for range 10.53.0.0/25
		{"range outside", api.NetworkCreate{Subnets: sub, IPRanges: []string{"10.53.0.0/25"}},
			`invalid ip-range "10.53.0.0/25": no matching subnet for range 10.53.0.0/25`},
		// moby daemon/network.go validateIPRange (dockerd 20.10 accepted it and allocated
		// from the whole subnet).
		{"range bigger", api.NetworkCreate{Subnets: sub, IPRanges: []string{"10.50.0.0/16"}},
			`invalid ip-range "10.50.0.0/16": CIDR block is bigger than its parent subnet 10.50.0.0/24`},
		// docker/cli cli/command/network/create.go: its 20.10 CLI says "every ip-range or
		// gateway must have a corresponding subnet" first, as it counts flags.
		{"two ranges one subnet", api.NetworkCreate{Subnets: sub, IPRanges: []string{"10.50.0.0/25", "10.50.0.128/25"}},
			`invalid ip-range "10.50.0.128/25": cannot configure multiple ranges (10.50.0.128/25, 10.50.0.0/25) on the same subnet (10.50.0.0/24)`},
		{"old and new range field", api.NetworkCreate{Subnets: sub, IPRanges: []string{"10.50.0.0/25"}, IPRange: "10.50.0.128/25"},
			`invalid ip-range "10.50.0.128/25": cannot configure multiple ranges (10.50.0.128/25, 10.50.0.0/25) on the same subnet (10.50.0.0/24)`},
		{"v4 range on ipv6-only", api.NetworkCreate{IPv4: boolp(false), IPv6: true, IPRanges: []string{"10.50.0.0/25"}},
			`invalid ip-range "10.50.0.0/25": no matching subnet for range 10.50.0.0/25`},
		{"v4 gateway on ipv6-only", api.NetworkCreate{IPv4: boolp(false), IPv6: true, Gateways: []string{"10.50.0.1"}},
			`invalid gateway "10.50.0.1": not in any subnet of the network`},
	}
	before := len(m.cfg.Store.Snapshot().Networks())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Name = "n"
			_, err := m.CreateNetwork(t.Context(), tc.req)
			if got := errText(err); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if got := len(m.cfg.Store.Snapshot().Networks()); got != before {
		t.Errorf("networks: %d after bad input, want %d", got, before)
	}
}

func TestIPv6OnlyNetwork(t *testing.T) {
	m, k := newTestManager(t)
	n := mustNetwork(t, m, api.NetworkCreate{Name: "v6", IPv4: boolp(false), IPv6: true})
	if len(n.Subnets) != 1 || !n.Subnets[0].Subnet.Addr().Is6() || !n.NoIPv4 {
		t.Fatalf("subnets %v, NoIPv4 %v; want one IPv6 subnet and NoIPv4", n.Subnets, n.NoIPv4)
	}
	if p := n.Subnets[0].Subnet; p.Bits() != 64 || p.Addr().As16()[0] != 0xfd {
		t.Errorf("picked subnet %s, want a ULA /64 (fd00::/8)", p)
	}
	given := mustNetwork(t, m, api.NetworkCreate{Name: "v6b", IPv4: boolp(false), IPv6: true, Subnets: []string{"fd12:3456::/64"}})
	if want := []store.Subnet{{Subnet: netip.MustParsePrefix("fd12:3456::/64"), Gateway: netip.MustParseAddr("fd12:3456::1")}}; len(given.Subnets) != 1 || given.Subnets[0] != want[0] {
		t.Errorf("given subnet: %v, want %v", given.Subnets, want)
	}
	dual := mustNetwork(t, m, api.NetworkCreate{Name: "dual", IPv6: true, Subnets: []string{"fd00:99::/64", "10.99.0.0/24"}})
	if len(dual.Subnets) != 2 || !dual.Subnets[0].Subnet.Addr().Is4() {
		t.Errorf("dual-stack subnets %v, want IPv4 first", dual.Subnets)
	}
	sb, ep := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"v6b", "dual"}})
	if ep.IPv4.IsValid() || ep.IPv6 != netip.MustParseAddr("fd12:3456::2") {
		t.Errorf("endpoint on v6b: IPv4 %v IPv6 %v, want no IPv4 and fd12:3456::2", ep.IPv4, ep.IPv6)
	}
	if ep.MAC == "" {
		t.Error("endpoint without IPv4 has no MAC")
	}
	// The IPv6 default route goes via the IPv6-only network (the first), IPv4 via the other.
	if got, want := k.gw[sb.NetNSPath], [2]netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("fd12:3456::1")}; got != want {
		t.Errorf("default gateways %v, want %v", got, want)
	}
	// Docker 28: moby daemon/container_operations.go, validateEndpointIPAddress.
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "b", Networks: []string{"v6b"}, IPv4: "10.0.0.5"})
	if got, want := errText(err), `invalid ip "10.0.0.5": no configured subnet contains IP address 10.0.0.5`; got != want {
		t.Errorf("--ip on an IPv6-only network:\n got %s\nwant %s", got, want)
	}
	st := firewallState(m.cfg.Store.Snapshot())
	for _, fn := range st.Networks {
		if fn.Bridge != given.Bridge {
			continue
		}
		if len(fn.Subnets) != 1 || fn.Subnets[0].Addr().Is4() {
			t.Errorf("firewall subnets of the IPv6-only network %v, want only its IPv6 one (no IPv4 NAT)", fn.Subnets)
		}
	}
}

func TestAuxAddressNeverHandedOut(t *testing.T) {
	m, _ := newTestManager(t)
	// A /29: .1 gateway, .2 and .3 aux, so dynamic addresses are .4, .5, .6 (oracle: the
	// first container on such a network got 10.90.0.4).
	n := mustNetwork(t, m, api.NetworkCreate{Name: "small", Subnets: []string{"10.90.0.0/29"},
		AuxAddresses: map[string]string{"a": "10.90.0.2", "b": "10.90.0.3"}})
	if len(n.Aux) != 2 {
		t.Fatalf("aux %v, want a and b", n.Aux)
	}
	var got []string
	for _, name := range []string{"s1", "s2", "s3"} {
		_, ep := mustSandbox(t, m, api.SandboxCreate{Name: name, Networks: []string{"small"}})
		got = append(got, ep.IPv4.String())
	}
	if want := []string{"10.90.0.4", "10.90.0.5", "10.90.0.6"}; !equalStrings(got, want) {
		t.Errorf("dynamic addresses %v, want %v", got, want)
	}
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "s4", Networks: []string{"small"}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("fourth sandbox: err %v, want the network full (aux addresses are not free)", err)
	}
	// oracle: docker run --ip AUX answers "Address already in use".
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "s5", Networks: []string{"small"}, IPv4: "10.90.0.3"})
	if got, want := errText(err), `invalid ip "10.90.0.3": Address already in use (aux-address b)`; got != want {
		t.Errorf("static aux address:\n got %s\nwant %s", got, want)
	}
}

func TestIPRangePerSubnet(t *testing.T) {
	m, _ := newTestManager(t)
	n := mustNetwork(t, m, api.NetworkCreate{Name: "r", IPv6: true, Subnets: []string{"10.60.0.0/24", "fd00:60::/64"},
		IPRanges: []string{"fd00:60::100/120", "10.60.0.128/25"}, AuxAddresses: map[string]string{"v6": "fd00:60::100"}})
	if got := n.Subnets[0].IPRange.String() + " " + n.Subnets[1].IPRange.String(); got != "10.60.0.128/25 fd00:60::100/120" {
		t.Errorf("ranges %s, want each in the subnet containing it", got)
	}
	_, ep := mustSandbox(t, m, api.SandboxCreate{Name: "a", Networks: []string{"r"}})
	if ep.IPv4.String() != "10.60.0.128" || ep.IPv6.String() != "fd00:60::101" {
		t.Errorf("addresses %s %s, want 10.60.0.128 and fd00:60::101 (the range's first, the aux skipped)", ep.IPv4, ep.IPv6)
	}
}

func TestConfigOnlyNetwork(t *testing.T) {
	m, k := newTestManager(t)
	cfg := mustNetwork(t, m, api.NetworkCreate{Name: "cfg", ConfigOnly: true, Subnets: []string{"10.80.0.0/24"},
		IPRanges: []string{"10.80.0.64/26"}, AuxAddresses: map[string]string{"r": "10.80.0.70"},
		Options: map[string]string{OptICC: "false"}, Labels: map[string]string{"k": "v"}})
	if cfg.Driver != store.DriverNull || cfg.Bridge != "" || cfg.Subnets[0].Gateway.IsValid() {
		t.Errorf("config-only: driver %q bridge %q gateway %v; want null, none, none (nothing allocated)", cfg.Driver, cfg.Bridge, cfg.Subnets[0].Gateway)
	}
	for name, kind := range k.links {
		if kind == "bridge" && name != DefaultBridge {
			t.Errorf("bridge %s made for a configuration network", name)
		}
	}
	// oracle: docker run --network cfg.
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "s", Networks: []string{"cfg"}})
	if got, want := errText(err), `invalid network "cfg": cannot create endpoint on configuration-only network`; got != want {
		t.Errorf("sandbox on config-only:\n got %s\nwant %s", got, want)
	}
	from := mustNetwork(t, m, api.NetworkCreate{Name: "fromcfg", ConfigFrom: "cfg", Internal: true})
	if from.ConfigFrom != "cfg" || from.Driver != store.DriverBridge || from.ICC || from.Labels["k"] != "v" || !from.Internal ||
		from.Subnets[0].IPRange.String() != "10.80.0.64/26" || from.Aux["r"].String() != "10.80.0.70" {
		t.Errorf("config-from network %+v: want cfg's subnet, range, aux, options and labels, and its own --internal", from)
	}
	// oracle: a second network from the same configuration overlaps the first.
	_, err = m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "x", ConfigFrom: "cfg"})
	if got, want := errText(err), `invalid subnet "10.80.0.0/24": overlaps the subnet of network fromcfg`; got != want {
		t.Errorf("second config-from:\n got %s\nwant %s", got, want)
	}
	// oracle: configuration network "nope" does not exist; the same for a network that is
	// not a configuration network.
	for _, ref := range []string{"nope", "fromcfg"} {
		_, err = m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "x", ConfigFrom: ref})
		if want := `configuration network "` + ref + `" does not exist: not found`; err == nil || err.Error() != want || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("config-from %s: err %v, want %s", ref, err, want)
		}
	}
	// oracle: error while removing network: configuration network "cfg" is in use
	err = m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "cfg"})
	if want := `configuration network "cfg" is in use: conflict`; err == nil || err.Error() != want {
		t.Errorf("rm cfg in use: err %v, want %s", err, want)
	}
	if deleted, err := m.PruneNetworks(t.Context(), nil); err != nil || !equalStrings(deleted, []string{"fromcfg"}) {
		t.Errorf("prune: %v %v, want only fromcfg (configuration networks stay, as Docker's prune)", deleted, err)
	}
	if err := m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "cfg"}); err != nil {
		t.Errorf("rm cfg unused: %v", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestULABase checks the IPv6 pool against moby's own vectors (daemon/daemon_test.go,
// TestDeriveULABaseNetwork), and that networks take its /64s in order.
func TestULABase(t *testing.T) {
	for id, want := range map[string]string{
		"":                                     "fd42:98fc:1c14::/48",
		"499d4bc0-b0b3-416f-b1ee-cf6486315593": "fd62:fb69:18af::/48",
	} {
		if got := ulaBase(id).String(); got != want {
			t.Errorf("ulaBase(%q) = %s, want %s", id, got, want)
		}
	}
	m, _ := newTestManager(t)
	base := ulaBase(hostID(m.cfg.Store.Snapshot()))
	if base.Addr() == ulaBase("").Addr() {
		t.Fatalf("host ID is empty: the bridge network should give it")
	}
	var got []string
	for _, name := range []string{"a", "b", "c"} {
		n := mustNetwork(t, m, api.NetworkCreate{Name: name, IPv4: boolp(name != "b"), IPv6: true})
		got = append(got, n.Subnets[len(n.Subnets)-1].Subnet.String())
	}
	b := base.Addr().As16()
	var want []string
	for i := range 3 {
		b[7] = byte(i)
		want = append(want, netip.PrefixFrom(netip.AddrFrom16(b), 64).String())
	}
	if !equalStrings(got, want) {
		t.Errorf("picked IPv6 subnets %v, want the first /64s of %s in order: %v", got, base, want)
	}
}

// TestConfigOnlyAuxUnallocated: a configuration network allocates nothing, so an aux
// address on its gateway, network address or twice is taken (oracle, dockerd 20.10:
// created) and refused only by a network made --config-from it, in dockerd's words. One
// outside every subnet is the docker CLI's refusal, for both.
func TestConfigOnlyAuxUnallocated(t *testing.T) {
	m, _ := newTestManager(t)
	for _, tc := range []struct {
		name string
		req  api.NetworkCreate
		want string // of the --config-from network
	}{
		{"gateway", api.NetworkCreate{Subnets: []string{"10.61.0.0/24"}, Gateways: []string{"10.61.0.5"},
			AuxAddresses: map[string]string{"r": "10.61.0.5"}},
			`invalid aux-address "r=10.61.0.5": failed to allocate secondary ip address (r:10.61.0.5): Address already in use`},
		{"netaddr", api.NetworkCreate{Subnets: []string{"10.62.0.0/24"}, AuxAddresses: map[string]string{"r": "10.62.0.0"}},
			`invalid aux-address "r=10.62.0.0": failed to allocate secondary ip address (r:10.62.0.0): Address already in use`},
		{"twice", api.NetworkCreate{Subnets: []string{"10.63.0.0/24"}, AuxAddresses: map[string]string{"r": "10.63.0.9", "s": "10.63.0.9"}},
			`invalid aux-address "s=10.63.0.9": failed to allocate secondary ip address (s:10.63.0.9): Address already in use`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Name, tc.req.ConfigOnly = "cfg-"+tc.name, true
			if _, err := m.CreateNetwork(t.Context(), tc.req); err != nil {
				t.Fatalf("config-only: %v, want it created", err)
			}
			_, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "from-" + tc.name, ConfigFrom: tc.req.Name})
			if got := errText(err); got != tc.want {
				t.Errorf("config-from:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	// oracle (docker CLI): No matching subnet for aux-address 10.67.0.9
	_, err := m.CreateNetwork(t.Context(), api.NetworkCreate{Name: "cfg6", ConfigOnly: true, Subnets: []string{"10.66.0.0/24"},
		AuxAddresses: map[string]string{"r": "10.67.0.9"}})
	if got, want := errText(err), `invalid aux-address "r=10.67.0.9": no matching subnet for aux-address 10.67.0.9`; got != want {
		t.Errorf("config-only aux outside:\n got %s\nwant %s", got, want)
	}
}
