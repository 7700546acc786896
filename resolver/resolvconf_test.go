package resolver

import (
	"strings"
	"testing"

	"berth/store"
)

// Where a sandbox of the resolv.conf and hosts tests is attached.
const (
	onUser   = "user"   // n1, IPv4 only
	onUser6  = "user6"  // n6, dual stack
	onBridge = "bridge" // the default bridge, IPv4 only
	onBr6    = "bridge6"
	onNone   = "none"
	onHost   = "host"
	onShared = "shared" // container mode, sharing a sandbox on n1
)

// place creates sandbox "s" (and what it shares) attached as where says.
func place(f *fixture, where string, opts ...func(*store.Sandbox)) *store.Sandbox {
	bridge, _, _ := f.predefined()
	n1 := f.network("n1", "10.1.0.0/24")
	n6 := f.network("n6", "10.6.0.0/24", "fd00:6::/64")
	switch where {
	case onNone:
		return f.sandbox("s", append(opts, mode(store.ModeNone, ""))...)
	case onHost:
		return f.sandbox("s", append(opts, mode(store.ModeHost, ""))...)
	case onShared:
		owner := f.sandbox("owner", opts...)
		f.connect(owner, n1, ep{ip4: "10.1.0.9"})
		return f.sandbox("s", mode(store.ModeContainer, owner.ID))
	}
	sb := f.sandbox("s", opts...)
	switch where {
	case onUser:
		f.connect(sb, n1, ep{ip4: "10.1.0.2"})
	case onUser6:
		f.connect(sb, n6, ep{ip4: "10.6.0.2", ip6: "fd00:6::2"})
	case onBridge:
		f.connect(sb, bridge, ep{ip4: "172.17.0.2"})
	case onBr6:
		f.connect(sb, bridge, ep{ip4: "172.17.0.2", ip6: "fd00:17::2"})
	}
	return sb
}

func dns(s ...string) func(*store.Sandbox)    { return func(sb *store.Sandbox) { sb.DNS = s } }
func search(s ...string) func(*store.Sandbox) { return func(sb *store.Sandbox) { sb.DNSSearch = s } }
func opts(s ...string) func(*store.Sandbox)   { return func(sb *store.Sandbox) { sb.DNSOptions = s } }

func TestResolvConf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string // in testdata/hostfiles
		where  string
		sbOpts []func(*store.Sandbox)
		daemon HostConfig // DNS, DNSSearch, DNSOptions only
	}{
		// Embedded DNS (user-defined network).
		{name: "internal_localhost", file: "localhost.conf", where: onUser}, // Docker's TestResolvConfLocalhostIPv6
		{name: "internal_loopback_only", file: "loopback_only.conf", where: onUser},
		{name: "internal_ipv6_nameservers", file: "ipv6.conf", where: onUser},
		{name: "internal_no_nameservers", file: "no_nameservers.conf", where: onUser},
		{name: "internal_ndots_host", file: "ndots2.conf", where: onUser},
		{name: "internal_ndots_invalid", file: "ndots_invalid.conf", where: onUser},
		{name: "internal_search_domain_unknown", file: "search_domain.conf", where: onUser},
		{name: "internal_many_nameservers", file: "many.conf", where: onUser},
		{name: "internal_override_dns", file: "localhost.conf", where: onUser, sbOpts: []func(*store.Sandbox){dns("127.0.0.53")}}, // Docker's IPv4_localhost_override
		{name: "internal_overrides_all", file: "search_domain.conf", where: onUser,
			sbOpts: []func(*store.Sandbox){dns("10.1.0.53", "10.1.0.54:5353"), search("x.example", "y.example"), opts("ndots:3", "attempts:2")}},
		{name: "internal_search_dot_clears", file: "search_domain.conf", where: onUser, sbOpts: []func(*store.Sandbox){search(".")}},
		{name: "internal_options_override_without_ndots", file: "ndots2.conf", where: onUser, sbOpts: []func(*store.Sandbox){opts("edns0")}},
		{name: "internal_daemon_overrides", file: "localhost.conf", where: onUser,
			daemon: HostConfig{DNS: []string{"9.9.9.9"}, DNSSearch: []string{"d.example"}, DNSOptions: []string{"ndots:1"}}},
		{name: "internal_sandbox_beats_daemon", file: "localhost.conf", where: onUser, sbOpts: []func(*store.Sandbox){dns("10.1.0.53")},
			daemon: HostConfig{DNS: []string{"9.9.9.9"}, DNSSearch: []string{"d.example"}}},
		{name: "internal_dual_stack", file: "ipv6.conf", where: onUser6},
		{name: "container_mode", file: "ndots2.conf", where: onShared},

		// Default bridge and none: no embedded DNS.
		{name: "legacy_localhost", file: "localhost.conf", where: onBridge},
		{name: "legacy_loopback_only_ipv6", file: "loopback_only.conf", where: onBr6},
		{name: "legacy_ipv6_nameservers_v4_sandbox", file: "ipv6.conf", where: onBridge},
		{name: "legacy_ipv6_nameservers_v6_sandbox", file: "ipv6.conf", where: onBr6},
		{name: "legacy_no_nameservers", file: "no_nameservers.conf", where: onBridge},
		{name: "legacy_dns_loopback_not_filtered", file: "ipv6.conf", where: onBridge, sbOpts: []func(*store.Sandbox){dns("127.0.0.1", "::1")}},
		{name: "legacy_ndots_invalid_kept", file: "ndots_invalid.conf", where: onBridge},
		{name: "legacy_search_override", file: "search_domain.conf", where: onBridge, sbOpts: []func(*store.Sandbox){search("z.example"), opts("rotate")}},
		{name: "none_mode", file: "localhost.conf", where: onNone},

		// Host networking: the host file with overrides, nothing filtered.
		{name: "host_mode", file: "search_domain.conf", where: onHost},
		{name: "host_mode_overrides", file: "localhost.conf", where: onHost, sbOpts: []func(*store.Sandbox){dns("192.0.2.9"), opts("ndots:2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			sb := place(f, tc.where, tc.sbOpts...)
			host := tc.daemon
			host.ResolvConfPath = "/etc/resolv.conf"
			host.ResolvConf = hostFile(t, tc.file)
			golden(t, ResolvConf(f.snap(), sb.ID, host))
		})
	}
}

// TestResolvConfDocker pins the golden of Docker's TestResolvConfLocalhostIPv6 (header aside).
func TestResolvConfDocker(t *testing.T) {
	f := newFixture(t)
	sb := place(f, onUser)
	got := ResolvConf(f.snap(), sb.ID, HostConfig{ResolvConfPath: "/etc/resolv.conf", ResolvConf: []byte("nameserver 127.0.0.53\n")})
	want := header + `

nameserver 127.0.0.11
options ndots:0

# Based on host file: '/etc/resolv.conf' (internal resolver)
# ExtServers: [host(127.0.0.53)]
# Overrides: []
# Option ndots from: internal
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestResolvConfMissingSandbox(t *testing.T) {
	f := newFixture(t)
	if got := ResolvConf(f.snap(), hexID("sb", "missing"), HostConfig{}); got != nil {
		t.Errorf("got %q; want nil", got)
	}
}

// TestResolvConfNeverLoops checks that no embedded sandbox's file names another nameserver
// than 127.0.0.11, whatever the host file says.
func TestResolvConfNeverLoops(t *testing.T) {
	for _, file := range []string{"localhost.conf", "ipv6.conf", "many.conf", "no_nameservers.conf", "search_domain.conf"} {
		f := newFixture(t)
		sb := place(f, onUser6, dns("127.0.0.11", "10.6.0.53"))
		out := string(ResolvConf(f.snap(), sb.ID, HostConfig{ResolvConf: hostFile(t, file)}))
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "nameserver ") && l != "nameserver 127.0.0.11" {
				t.Errorf("%s: unexpected %q", file, l)
			}
		}
		if !strings.Contains(out, "# ExtServers: [10.6.0.53]\n") {
			t.Errorf("%s: ExtServers should list only 10.6.0.53:\n%s", file, out)
		}
	}
}
