package netmgr

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"berth/api"
	"berth/store"
)

// The error text of every field check, whole: the CLI prints it as its one line, and the
// daemon, berth-cni and the CLI must agree on it.

// errText is err's text, "" for nil; any error that is not an *InvalidError is marked.
func errText(err error) string {
	var inv *InvalidError
	switch {
	case err == nil:
		return ""
	case !errors.As(err, &inv):
		return "not an InvalidError: " + err.Error()
	}
	return err.Error()
}

func TestValidateNetworkCreate(t *testing.T) {
	opt := func(k, v string) api.NetworkCreate {
		return api.NetworkCreate{Name: "n", Options: map[string]string{k: v}}
	}
	cases := []struct {
		name string
		req  api.NetworkCreate
		want string
	}{
		{"ok", api.NetworkCreate{Name: "n"}, ""},
		{"name empty", api.NetworkCreate{}, `invalid name "": must not be empty`},
		{"name long", api.NetworkCreate{Name: strings.Repeat("n", 64)}, `invalid name "` + strings.Repeat("n", 64) + `": longer than 63 characters`},
		{"name slash", api.NetworkCreate{Name: "a/b"}, `invalid name "a/b": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`},
		{"name dash", api.NetworkCreate{Name: "-x"}, `invalid name "-x": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`},
		{"name dots", api.NetworkCreate{Name: "a..b"}, `invalid name "a..b": must not contain ".."`},
		{"driver", api.NetworkCreate{Name: "n", Driver: "weave"}, `invalid driver "weave": only the bridge, overlay, macvlan and ipvlan drivers are supported`},
		{"bridge name long", opt(OptBridgeName, "waytoolongbridgename"),
			`invalid opt "com.docker.network.bridge.name=waytoolongbridgename": longer than 15 bytes`},
		{"bridge name empty", opt(OptBridgeName, ""), `invalid opt "com.docker.network.bridge.name=": must not be empty`},
		{"bridge name slash", opt(OptBridgeName, "br/0"), `invalid opt "com.docker.network.bridge.name=br/0": not a valid interface name`},
		{"mtu", opt(OptMTU, "67"), `invalid opt "com.docker.network.driver.mtu=67": MTU must be an integer between 68 and 65535`},
		{"mtu word", opt(OptMTU, "big"), `invalid opt "com.docker.network.driver.mtu=big": MTU must be an integer between 68 and 65535`},
		{"icc", opt(OptICC, "yes"), `invalid opt "com.docker.network.bridge.enable_icc=yes": want true or false`},
		{"masquerade", opt(OptMasquerade, "on"), `invalid opt "com.docker.network.bridge.enable_ip_masquerade=on": want true or false`},
		{"host binding", opt(OptHostBinding, "127.0.0.300"), `invalid opt "com.docker.network.bridge.host_binding_ipv4=127.0.0.300": not an IP address`},
		{"opt empty key", opt("", "v"), `invalid opt "=v": empty key`},
		{"unknown opt kept", opt("com.example.x", "anything"), ""},
		{"label empty key", api.NetworkCreate{Name: "n", Labels: map[string]string{"": "v"}}, `invalid label "=v": empty key`},
		{"subnet", api.NetworkCreate{Name: "n", Subnets: []string{"10.1.0.0/33"}}, `invalid subnet "10.1.0.0/33": not a CIDR (like 172.30.0.0/24)`},
		{"subnet zone", api.NetworkCreate{Name: "n", IPv6: true, Subnets: []string{"fe80::%eth0/64"}}, `invalid subnet "fe80::%eth0/64": not a CIDR (like 172.30.0.0/24)`},
		{"subnet host bits", api.NetworkCreate{Name: "n", Subnets: []string{"10.1.0.1/24"}}, `invalid subnet "10.1.0.1/24": host bits set (did you mean 10.1.0.0/24?)`},
		{"subnet /31", api.NetworkCreate{Name: "n", Subnets: []string{"10.1.0.0/31"}},
			`invalid subnet "10.1.0.0/31": too small: a /31 leaves no address for endpoints (at most /30)`},
		{"subnet /127", api.NetworkCreate{Name: "n", IPv6: true, Subnets: []string{"fd00::/127"}}, `invalid subnet "fd00::/127": too small (at most /126)`},
		{"subnet v6 without ipv6", api.NetworkCreate{Name: "n", Subnets: []string{"fd00::/64"}}, `invalid subnet "fd00::/64": IPv6 subnet needs --ipv6`},
		{"two v4 subnets", api.NetworkCreate{Name: "n", Subnets: []string{"10.1.0.0/24", "10.2.0.0/24"}},
			`invalid subnet "10.2.0.0/24": only one subnet per address family`},
		{"gateway", api.NetworkCreate{Name: "n", Gateways: []string{"10.1.0"}}, `invalid gateway "10.1.0": not an IP address`},
		{"gateway zone", api.NetworkCreate{Name: "n", Gateways: []string{"fe80::1%eth0"}}, `invalid gateway "fe80::1%eth0": not an IP address`},
		{"ip-range", api.NetworkCreate{Name: "n", IPRange: "10.1.0.128"}, `invalid ip-range "10.1.0.128": not a CIDR (like 172.30.0.0/24)`},
		{"ip-range host bits", api.NetworkCreate{Name: "n", IPRange: "10.1.0.129/25"}, `invalid ip-range "10.1.0.129/25": host bits set (did you mean 10.1.0.128/25?)`},
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

func TestValidateNetworkCreateParses(t *testing.T) {
	req := api.NetworkCreate{Name: "app", Internal: true, IPv6: true,
		Subnets: []string{"10.1.0.0/24", "fd00:1::/64"}, Gateways: []string{"::ffff:10.1.0.254"}, IPRange: "10.1.0.128/25",
		Options: map[string]string{OptBridgeName: "br-app", OptMTU: "1400", OptICC: "false", OptMasquerade: "1", "x": "y"},
		Labels:  map[string]string{"k": "v"}}
	got, err := ValidateNetworkCreate(req)
	if err != nil {
		t.Fatal(err)
	}
	want := NetworkSpec{Name: "app", Internal: true, IPv4: true, IPv6: true,
		Subnets: []Given[netip.Prefix]{
			{netip.MustParsePrefix("10.1.0.0/24"), "10.1.0.0/24"},
			{netip.MustParsePrefix("fd00:1::/64"), "fd00:1::/64"}},
		Gateways: []Given[netip.Addr]{{netip.MustParseAddr("10.1.0.254"), "::ffff:10.1.0.254"}},
		IPRanges: []Given[netip.Prefix]{{netip.MustParsePrefix("10.1.0.128/25"), "10.1.0.128/25"}},
		Bridge:   "br-app", MTU: 1400, ICC: false, Options: req.Options, Labels: req.Labels}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got, _ := ValidateNetworkCreate(api.NetworkCreate{Name: "n"}); !got.ICC || got.Bridge != "" || got.Options == nil || got.Labels == nil {
		t.Errorf("defaults: %+v, want ICC on, no bridge name, empty maps", got)
	}
}

func TestValidateSandboxCreate(t *testing.T) {
	req := func(f func(*api.SandboxCreate)) api.SandboxCreate {
		r := api.SandboxCreate{Name: "s"}
		f(&r)
		return r
	}
	cases := []struct {
		name string
		req  api.SandboxCreate
		want string
	}{
		{"ok", api.SandboxCreate{Name: "s"}, ""},
		{"no name", api.SandboxCreate{}, ""},
		{"name", api.SandboxCreate{Name: "../etc"}, `invalid name "../etc": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`},
		{"hostname", req(func(r *api.SandboxCreate) { r.Hostname = "a_b!" }), `invalid hostname "a_b!": character '!' not allowed`},
		{"hostname label", req(func(r *api.SandboxCreate) { r.Hostname = "a..b" }), `invalid hostname "a..b": empty label`},
		{"hostname dash", req(func(r *api.SandboxCreate) { r.Hostname = "-a" }), `invalid hostname "-a": label "-a" starts or ends with '-'`},
		{"hostname label long", req(func(r *api.SandboxCreate) { r.Hostname = strings.Repeat("h", 64) }),
			`invalid hostname "` + strings.Repeat("h", 64) + `": label "` + strings.Repeat("h", 64) + `" longer than 63 characters`},
		{"hostname uts", req(func(r *api.SandboxCreate) { r.Hostname = strings.Repeat("h", 30) + "." + strings.Repeat("h", 40) }),
			`invalid hostname "` + strings.Repeat("h", 30) + "." + strings.Repeat("h", 40) + `": longer than 64 characters (the kernel's limit)`},
		{"domainname", req(func(r *api.SandboxCreate) { r.Domainname = "bad_dom!" }), `invalid domainname "bad_dom!": character '!' not allowed`},
		{"dns", req(func(r *api.SandboxCreate) { r.DNS = []string{"1.2.3"} }), `invalid dns "1.2.3": not an IP address`},
		{"dns-search", req(func(r *api.SandboxCreate) { r.DNSSearch = []string{"a..b"} }), `invalid dns-search "a..b": empty label`},
		{"dns-search dot", req(func(r *api.SandboxCreate) { r.DNSSearch = []string{"."} }), ""},
		{"dns-search long", req(func(r *api.SandboxCreate) { r.DNSSearch = []string{strings.Repeat("a.", 128)} }),
			`invalid dns-search "` + strings.Repeat("a.", 128) + `": longer than 253 characters`},
		{"dns-option", req(func(r *api.SandboxCreate) { r.DNSOptions = []string{"ndots 2"} }),
			`invalid dns-option "ndots 2": must be one word of printable ASCII like ndots:2`},
		{"add-host", req(func(r *api.SandboxCreate) { r.ExtraHosts = []string{"nocolon"} }), `invalid add-host "nocolon": want HOST:IP`},
		{"add-host host", req(func(r *api.SandboxCreate) { r.ExtraHosts = []string{":1.2.3.4"} }), `invalid add-host ":1.2.3.4": host: must not be empty`},
		{"add-host ip", req(func(r *api.SandboxCreate) { r.ExtraHosts = []string{"h:1.2.3.999"} }), `invalid add-host "h:1.2.3.999": not an IP address: "1.2.3.999"`},
		{"add-host gateway", req(func(r *api.SandboxCreate) { r.ExtraHosts = []string{"h:host-gateway", "v6:[::1]"} }), ""},
		{"alias", req(func(r *api.SandboxCreate) { r.Aliases = []string{"a b"} }), `invalid alias "a b": character ' ' not allowed`},
		{"ip", req(func(r *api.SandboxCreate) { r.IPv4 = "10.20.0.50invalid" }), `invalid ip "10.20.0.50invalid": not an IP address`},
		{"ip family", req(func(r *api.SandboxCreate) { r.IPv4 = "fd00::1" }), `invalid ip "fd00::1": not an IPv4 address (use --ip6)`},
		{"ip6", req(func(r *api.SandboxCreate) { r.IPv6 = "fd00::x" }), `invalid ip6 "fd00::x": not an IP address`},
		{"ip6 family", req(func(r *api.SandboxCreate) { r.IPv6 = "10.0.0.1" }), `invalid ip6 "10.0.0.1": not an IPv6 address (use --ip)`},
		{"mac", req(func(r *api.SandboxCreate) { r.MAC = "zz" }), `invalid mac-address "zz": not a MAC address (like 02:42:ac:11:00:02)`},
		{"mac multicast", req(func(r *api.SandboxCreate) { r.MAC = "01:00:5e:00:00:01" }), `invalid mac-address "01:00:5e:00:00:01": multicast MAC address`},
		{"link target", req(func(r *api.SandboxCreate) { r.Links = []string{"a/b:x"} }), `invalid link "a/b:x": target: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`},
		{"link alias", req(func(r *api.SandboxCreate) { r.Links = []string{"db:-x"} }), `invalid link "db:-x": alias: label "-x" starts or ends with '-'`},
		{"link twice", req(func(r *api.SandboxCreate) { r.Links = []string{"db:x", "/web:X"} }), `invalid link "/web:X": alias "X" given twice`},
		{"label", req(func(r *api.SandboxCreate) { r.Labels = map[string]string{"a=b": "c"} }), `invalid label "a=b=c": want KEY=VALUE on one line`},
		{"label newline", req(func(r *api.SandboxCreate) { r.Labels = map[string]string{"k": "a\nb"} }), `invalid label "k=a\nb": want KEY=VALUE on one line`},
		{"netns relative", req(func(r *api.SandboxCreate) { r.NetNS = "run/netns/x" }), `invalid netns "run/netns/x": must be an absolute path`},
		{"network combined", req(func(r *api.SandboxCreate) { r.Networks = []string{"app", "host"} }), `invalid network "host": cannot be combined with other networks`},
		{"network special first", req(func(r *api.SandboxCreate) { r.Networks = []string{"none", "app"} }), `invalid network "none": cannot be combined with other networks`},
		{"network flags", req(func(r *api.SandboxCreate) { r.Networks, r.IPv4 = []string{"none"}, "10.0.0.1" }),
			`invalid network "none": --network-alias, --ip, --ip6, --mac-address and --link need a bridge network`},
		{"network publish", req(func(r *api.SandboxCreate) { r.Networks, r.Publish = []string{"host"}, []string{"80"} }),
			`invalid publish "host": port publishing needs a bridge network`},
		{"network netns", req(func(r *api.SandboxCreate) { r.Networks, r.NetNS = []string{"none"}, "/proc/1/ns/net" }),
			`invalid netns "/proc/1/ns/net": an adopted netns joins bridge networks only`},
		{"network container hostname", req(func(r *api.SandboxCreate) { r.Networks, r.Hostname = []string{"container:web"}, "x" }),
			`invalid network "container:web": conflicting options: --hostname and --domainname cannot be used with container: networking`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateSandboxCreate(tc.req)
			if got := errText(err); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestValidateSandboxCreateParses(t *testing.T) {
	got, err := ValidateSandboxCreate(api.SandboxCreate{Name: "web", Networks: []string{"app", "back"},
		Aliases: []string{"www"}, IPv4: "::ffff:10.1.0.5", IPv6: "fd00::5", MAC: "02:42:AC:11:00:02", Links: []string{"db", "/cache:c"},
		Publish: []string{"8080:80", "127.0.0.1::53/UDP"}, Expose: []string{"9000", "80"}, Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != store.ModeBridge || !reflect.DeepEqual(got.Networks, []string{"app", "back"}) {
		t.Errorf("mode %s networks %v, want bridge [app back]", got.Mode, got.Networks)
	}
	ep := got.Endpoint
	if ep.IPv4 != netip.MustParseAddr("10.1.0.5") || ep.IPv6 != netip.MustParseAddr("fd00::5") || ep.MAC.String() != "02:42:ac:11:00:02" {
		t.Errorf("endpoint addresses %v %v %v", ep.IPv4, ep.IPv6, ep.MAC)
	}
	if want := []store.Link{{Target: "db", Alias: "db"}, {Target: "cache", Alias: "c"}}; !reflect.DeepEqual(ep.Links, want) {
		t.Errorf("links %+v, want %+v", ep.Links, want)
	}
	wantPub := []PublishSpec{{Port: store.Port{Proto: "tcp", HostPort: 8080, Port: 80}, Field: "publish", Value: "8080:80"},
		{Port: store.Port{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), Port: 53}, Field: "publish", Value: "127.0.0.1::53/UDP"}}
	if !reflect.DeepEqual(got.Publish, wantPub) {
		t.Errorf("publish %+v, want %+v", got.Publish, wantPub)
	}
	// --expose first, then what --publish adds, each once.
	wantExp := []store.Port{{Proto: "tcp", Port: 9000}, {Proto: "tcp", Port: 80}, {Proto: "udp", Port: 53}}
	if !reflect.DeepEqual(got.Expose, wantExp) {
		t.Errorf("expose %+v, want %+v", got.Expose, wantExp)
	}

	for _, tc := range []struct{ nets, mode, container string }{
		{"", store.ModeBridge, ""},
		{"none", store.ModeNone, ""},
		{"host", store.ModeHost, ""},
		{"container:web", store.ModeContainer, "web"},
	} {
		var nets []string
		if tc.nets != "" {
			nets = []string{tc.nets}
		}
		got, err := ValidateSandboxCreate(api.SandboxCreate{Networks: nets})
		if err != nil || got.Mode != tc.mode || got.Container != tc.container {
			t.Errorf("--network %q: mode %q container %q, %v; want %q %q", tc.nets, got.Mode, got.Container, err, tc.mode, tc.container)
		}
		if tc.mode == store.ModeBridge && !reflect.DeepEqual(got.Networks, []string{DefaultNetwork}) {
			t.Errorf("no --network: networks %v, want the default bridge", got.Networks)
		}
	}
}

func TestValidateNetworkConnect(t *testing.T) {
	cases := []struct {
		name string
		req  api.NetworkConnect
		want string
	}{
		{"ok", api.NetworkConnect{Sandbox: "web", Aliases: []string{"www"}, IPv4: "10.0.0.2", Links: []string{"db"}}, ""},
		{"alias", api.NetworkConnect{Sandbox: "web", Aliases: []string{"-a"}}, `invalid alias "-a": label "-a" starts or ends with '-'`},
		{"ip", api.NetworkConnect{Sandbox: "web", IPv4: "10.0.0"}, `invalid ip "10.0.0": not an IP address`},
		{"ip6", api.NetworkConnect{Sandbox: "web", IPv6: "10.0.0.1"}, `invalid ip6 "10.0.0.1": not an IPv6 address (use --ip)`},
		{"link", api.NetworkConnect{Sandbox: "web", Links: []string{"db:"}}, `invalid link "db:": alias: must not be empty`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateNetworkConnect(tc.req)
			if got := errText(err); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestValidateSandboxRename(t *testing.T) {
	for name, want := range map[string]string{
		"web2":     "",
		"":         `invalid name "": must not be empty`,
		"bad/name": `invalid name "bad/name": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`,
	} {
		if got := errText(ValidateSandboxRename(api.SandboxRename{Name: name})); got != want {
			t.Errorf("rename to %q:\ngot  %s\nwant %s", name, got, want)
		}
	}
}
