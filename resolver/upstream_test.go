package resolver

import (
	"net/netip"
	"reflect"
	"testing"

	"berth/store"
)

func hostUp(s string) Upstream { return Upstream{Addr: netip.MustParseAddrPort(s), HostNS: true} }
func sbUp(s string) Upstream   { return Upstream{Addr: netip.MustParseAddrPort(s)} }

// upWorld has one sandbox per case; the names say what they are attached to.
type upWorld struct {
	*fixture
	n1, intl, bridge, mv, mvIntl *store.Network
}

func newUpWorld(t *testing.T) *upWorld {
	f := newFixture(t)
	bridge, _, _ := f.predefined()
	onParent := func(nw *store.Network, internal bool) *store.Network {
		nw = nw.Copy()
		nw.Driver, nw.Bridge, nw.Internal = store.DriverMacvlan, "", internal
		f.put(nw)
		return nw
	}
	return &upWorld{
		fixture: f,
		n1:      f.network("n1", "10.1.0.0/24"),
		intl:    f.internal("intl", "10.9.0.0/24"),
		bridge:  bridge,
		mv:      onParent(f.network("lan", "192.168.50.0/24"), false),
		mvIntl:  onParent(f.network("lanintl", "192.168.51.0/24"), true),
	}
}

func TestUpstreams(t *testing.T) {
	const fiveNS = "nameserver 10.0.0.1\nnameserver 127.0.0.11\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n"
	for _, tc := range []struct {
		name   string
		nets   string // "n1", "intl", "bridge", "intl+n1"
		sbDNS  []string
		host   HostConfig
		want   []Upstream
		extern bool
	}{
		{"host file, from the host netns", "n1", nil,
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n")},
			[]Upstream{hostUp("127.0.0.53:53")}, true},
		{"host file IPv6 and zone", "n1", nil,
			HostConfig{ResolvConf: []byte("nameserver 2001:db8::1\nnameserver fe80::1%eth0\n")},
			[]Upstream{hostUp("[2001:db8::1]:53"), hostUp("[fe80::1%eth0]:53")}, true},
		{"at most three, 127.0.0.11 skipped first", "n1", nil,
			HostConfig{ResolvConf: []byte(fiveNS)},
			[]Upstream{hostUp("10.0.0.1:53"), hostUp("10.0.0.2:53"), hostUp("10.0.0.3:53")}, true},
		{"sandbox --dns from inside", "n1", []string{"10.1.0.53", "10.1.0.54:5353", "[fd00::1]:5300"},
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n"), DNS: []string{"9.9.9.9"}},
			[]Upstream{sbUp("10.1.0.53:53"), sbUp("10.1.0.54:5353"), sbUp("[fd00::1]:5300")}, true},
		{"daemon --dns when the sandbox has none", "n1", nil,
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n"), DNS: []string{"9.9.9.9", "149.112.112.112"}},
			[]Upstream{sbUp("9.9.9.9:53"), sbUp("149.112.112.112:53")}, true},
		{"--dns 127.0.0.11 dropped", "n1", []string{"127.0.0.11", "10.1.0.53"},
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n")},
			[]Upstream{sbUp("10.1.0.53:53")}, true},
		{"--dns invalid value skipped", "n1", []string{"not-an-ip", "10.1.0.53"},
			HostConfig{},
			[]Upstream{sbUp("10.1.0.53:53")}, true},
		{"none at all", "n1", nil, HostConfig{ResolvConf: []byte("search example.com\n")}, nil, true},
		{"internal only drops host ones", "intl", nil,
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\nnameserver 10.0.0.1\n")},
			nil, false},
		{"internal only keeps --dns", "intl", []string{"10.9.0.53"},
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n")},
			[]Upstream{sbUp("10.9.0.53:53")}, false},
		{"internal only keeps daemon --dns", "intl", nil,
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n"), DNS: []string{"10.9.0.53"}},
			[]Upstream{sbUp("10.9.0.53:53")}, false},
		{"internal plus external network", "intl+n1", nil,
			HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n")},
			[]Upstream{hostUp("127.0.0.53:53")}, true},
		{"default bridge has external access", "bridge", nil,
			HostConfig{ResolvConf: []byte("nameserver 10.0.0.1\n")},
			[]Upstream{hostUp("10.0.0.1:53")}, true},
		// moby's hasExternalAccess: any endpoint with a gateway, macvlan's on the LAN too.
		{"macvlan with a gateway has external access", "mv", nil,
			HostConfig{ResolvConf: []byte("nameserver 10.0.0.1\n")},
			[]Upstream{hostUp("10.0.0.1:53")}, true},
		{"internal macvlan (no parent) has none", "mvintl", nil,
			HostConfig{ResolvConf: []byte("nameserver 10.0.0.1\n")},
			nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newUpWorld(t)
			sb := w.sandbox("s", func(sb *store.Sandbox) { sb.DNS = tc.sbDNS })
			switch tc.nets {
			case "n1":
				w.connect(sb, w.n1, ep{ip4: "10.1.0.2"})
			case "intl":
				w.connect(sb, w.intl, ep{ip4: "10.9.0.2"})
			case "intl+n1":
				w.connect(sb, w.intl, ep{ip4: "10.9.0.2"})
				w.connect(sb, w.n1, ep{ip4: "10.1.0.2"})
			case "bridge":
				w.connect(sb, w.bridge, ep{ip4: "172.17.0.2"})
			case "mv":
				w.connect(sb, w.mv, ep{ip4: "192.168.50.10"})
			case "mvintl":
				w.connect(sb, w.mvIntl, ep{ip4: "192.168.51.10"})
			}
			snap := w.snap()
			if got := Upstreams(snap, sb.ID, tc.host); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Upstreams = %v; want %v", got, tc.want)
			}
			if got := ExternalAccess(snap, sb.ID); got != tc.extern {
				t.Errorf("ExternalAccess = %v; want %v", got, tc.extern)
			}
		})
	}
}

// TestUpstreamsFollowConnect is CVE-2024-29018's re-evaluation: host upstreams appear when
// an external network is connected and go away when it is disconnected.
func TestUpstreamsFollowConnect(t *testing.T) {
	w := newUpWorld(t)
	host := HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n")}
	sb := w.sandbox("s")
	w.connect(sb, w.intl, ep{ip4: "10.9.0.2"})
	if got := Upstreams(w.snap(), sb.ID, host); got != nil {
		t.Fatalf("internal only: got %v; want none", got)
	}
	e := w.connect(sb, w.n1, ep{ip4: "10.1.0.2"})
	if got, want := Upstreams(w.snap(), sb.ID, host), []Upstream{hostUp("127.0.0.53:53")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after connect: got %v; want %v", got, want)
	}
	w.disconnect(e)
	if got := Upstreams(w.snap(), sb.ID, host); got != nil {
		t.Fatalf("after disconnect: got %v; want none", got)
	}
}

func TestModes(t *testing.T) {
	w := newUpWorld(t)
	host := HostConfig{ResolvConf: []byte("nameserver 127.0.0.53\n")}
	user := w.sandbox("user")
	w.connect(user, w.n1, ep{ip4: "10.1.0.2"})
	legacy := w.sandbox("legacy")
	w.connect(legacy, w.bridge, ep{ip4: "172.17.0.2"})
	both := w.sandbox("both")
	w.connect(both, w.bridge, ep{ip4: "172.17.0.3"})
	w.connect(both, w.n1, ep{ip4: "10.1.0.3"})
	intl := w.sandbox("intl")
	w.connect(intl, w.intl, ep{ip4: "10.9.0.2"})
	none := w.sandbox("none", mode(store.ModeNone, ""))
	hostMode := w.sandbox("hostmode", mode(store.ModeHost, ""))
	shareUser := w.sandbox("shareuser", mode(store.ModeContainer, user.ID))
	shareIntl := w.sandbox("shareintl", mode(store.ModeContainer, intl.ID))
	empty := w.sandbox("empty")
	snap := w.snap()
	for _, tc := range []struct {
		sb               *store.Sandbox
		embedded, extern bool
		upstreams        int
	}{
		{user, true, true, 1},
		{legacy, false, true, 1},
		{both, true, true, 1},
		{intl, true, false, 0},
		{none, false, false, 0},
		{hostMode, false, true, 1},
		{shareUser, true, true, 1},
		{shareIntl, true, false, 0},
		{empty, false, false, 0},
	} {
		t.Run(tc.sb.Name, func(t *testing.T) {
			if got := Embedded(snap, tc.sb.ID); got != tc.embedded {
				t.Errorf("Embedded = %v; want %v", got, tc.embedded)
			}
			if got := ExternalAccess(snap, tc.sb.ID); got != tc.extern {
				t.Errorf("ExternalAccess = %v; want %v", got, tc.extern)
			}
			if got := Upstreams(snap, tc.sb.ID, host); len(got) != tc.upstreams {
				t.Errorf("Upstreams = %v; want %d", got, tc.upstreams)
			}
		})
	}
	missing := hexID("sb", "missing")
	if Embedded(snap, missing) || ExternalAccess(snap, missing) || Upstreams(snap, missing, host) != nil {
		t.Errorf("missing sandbox: want false, false, nil")
	}
}

func TestNDotsSet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		sbOpts []string
		dOpts  []string
		want   bool
	}{
		{"none", "nameserver 10.0.0.1\noptions edns0\n", nil, nil, false},
		{"host file", "options ndots:2\n", nil, nil, true},
		{"host file ndots:0 counts", "options ndots:0\n", nil, nil, true},
		{"host file invalid counts", "options ndots:foo\n", nil, nil, true},
		{"sandbox option", "", []string{"ndots:1"}, nil, true},
		{"daemon option", "", nil, []string{"ndots:3"}, true},
		{"override without ndots replaces host's", "options ndots:2\n", []string{"edns0"}, nil, false},
		{"sandbox override wins over daemon", "", []string{"edns0"}, []string{"ndots:3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			sb := f.sandbox("s", func(sb *store.Sandbox) { sb.DNSOptions = tc.sbOpts })
			host := HostConfig{ResolvConf: []byte(tc.file), DNSOptions: tc.dOpts}
			if got := NDotsSet(f.snap(), sb.ID, host); got != tc.want {
				t.Errorf("NDotsSet = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestUpstreamString(t *testing.T) {
	for _, tc := range []struct {
		u    Upstream
		want string
	}{
		{hostUp("127.0.0.53:53"), "host(127.0.0.53)"},
		{sbUp("1.2.3.4:53"), "1.2.3.4"},
		{sbUp("1.2.3.4:5353"), "1.2.3.4:5353"},
		{hostUp("[2001:db8::1]:53"), "host(2001:db8::1)"},
		{sbUp("[2001:db8::1]:5353"), "[2001:db8::1]:5353"},
	} {
		if got := tc.u.String(); got != tc.want {
			t.Errorf("%#v.String() = %q; want %q", tc.u, got, tc.want)
		}
	}
}
