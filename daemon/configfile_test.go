package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"berth/netmgr"
)

// testFlags has the flags daemon.json keys set, of the kinds cmd/berth-daemon gives them.
type testFlags struct {
	fs                                  *pflag.FlagSet
	bip, fixed, fixed6, level, group    string
	root, execRoot, metrics, store, adv string
	ca, cert, key                       string
	ipv6, ipt, masq, icc, fwd, verify   bool
	mtu                                 int
	dns, search, opts, kv               []string
	pools                               []netmgr.Pool
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: pflag.NewFlagSet("berth daemon", pflag.ContinueOnError)}
	fs := f.fs
	for name, p := range map[string]*string{"bip": &f.bip, "fixed-cidr": &f.fixed, "fixed-cidr-v6": &f.fixed6,
		"log-level": &f.level, "group": &f.group, "root": &f.root, "exec-root": &f.execRoot,
		"metrics-addr": &f.metrics, "cluster-store": &f.store, "cluster-advertise": &f.adv,
		"tlscacert": &f.ca, "tlscert": &f.cert, "tlskey": &f.key} {
		fs.StringVar(p, name, "", "")
	}
	for name, p := range map[string]*bool{"ipv6": &f.ipv6, "tlsverify": &f.verify} {
		fs.BoolVar(p, name, false, "")
	}
	for name, p := range map[string]*bool{"iptables": &f.ipt, "ip-masq": &f.masq, "icc": &f.icc, "ip-forward": &f.fwd} {
		fs.BoolVar(p, name, true, "")
	}
	fs.IntVar(&f.mtu, "mtu", 0, "")
	for name, p := range map[string]*[]string{"dns": &f.dns, "dns-search": &f.search, "dns-option": &f.opts, "cluster-store-opt": &f.kv} {
		fs.StringArrayVar(p, name, nil, "")
	}
	fs.Var(PoolsValue{Pools: &f.pools}, "default-address-pool", "")
	return f
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFileKeys(t *testing.T) {
	f := newTestFlags()
	p := writeFile(t, `{"bip": "192.168.5.1/24", "fixed-cidr": "192.168.5.128/25", "fixed-cidr-v6": "2001:db8::/64",
		"ipv6": true, "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}, {"base": "10.20.0.0/16", "size": 20}],
		"dns": ["1.1.1.1", "9.9.9.9"], "dns-search": ["example.com"], "dns-opts": ["ndots:2"], "mtu": 1400,
		"iptables": false, "ip-masq": false, "icc": false, "ip-forward": false, "log-level": "debug", "group": "staff",
		"data-root": "/srv/berth", "exec-root": "/run/b", "metrics-addr": "127.0.0.1:9323",
		"cluster-store": "etcd://10.0.0.1:2379", "cluster-advertise": "10.0.0.2",
		"cluster-store-opts": {"kv.certfile": "c.pem", "kv.cacertfile": "ca.pem"},
		"tlsverify": true, "tlscacert": "ca.pem", "tlscert": "cert.pem", "tlskey": "key.pem"}`)
	if err := ApplyConfigFile(f.fs, p, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, got, want string }{
		{"bip", f.bip, "192.168.5.1/24"}, {"fixed-cidr", f.fixed, "192.168.5.128/25"}, {"fixed-cidr-v6", f.fixed6, "2001:db8::/64"},
		{"log-level", f.level, "debug"}, {"group", f.group, "staff"}, {"data-root", f.root, "/srv/berth"},
		{"exec-root", f.execRoot, "/run/b"}, {"metrics-addr", f.metrics, "127.0.0.1:9323"},
		{"cluster-store", f.store, "etcd://10.0.0.1:2379"}, {"cluster-advertise", f.adv, "10.0.0.2"},
		{"tlscacert", f.ca, "ca.pem"}, {"tlscert", f.cert, "cert.pem"}, {"tlskey", f.key, "key.pem"},
		{"dns", strings.Join(f.dns, " "), "1.1.1.1 9.9.9.9"}, {"dns-search", strings.Join(f.search, " "), "example.com"},
		{"dns-opts", strings.Join(f.opts, " "), "ndots:2"},
		{"cluster-store-opts", strings.Join(f.kv, " "), "kv.cacertfile=ca.pem kv.certfile=c.pem"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.key, c.got, c.want)
		}
	}
	if !f.ipv6 || f.ipt || f.masq || f.icc || f.fwd || !f.verify || f.mtu != 1400 {
		t.Errorf("got ipv6 %v iptables %v ip-masq %v icc %v ip-forward %v tlsverify %v mtu %d", f.ipv6, f.ipt, f.masq, f.icc, f.fwd, f.verify, f.mtu)
	}
	want := []netmgr.Pool{{Base: netip.MustParsePrefix("10.10.0.0/16"), Size: 24}, {Base: netip.MustParsePrefix("10.20.0.0/16"), Size: 20}}
	if len(f.pools) != 2 || f.pools[0] != want[0] || f.pools[1] != want[1] {
		t.Errorf("default-address-pools: got %v, want %v", f.pools, want)
	}
}

// TestConfigFileErrors has dockerd 20.10's answers (dockerd --config-file FILE [FLAG]) for
// each case; berth says "berth daemon" where dockerd says "Docker daemon".
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		flags      []string
		want       string // after "unable to configure the berth daemon with file FILE: "
	}{
		{"flag and file", `{"bip": "10.2.0.1/24"}`, []string{"--bip", "10.1.0.1/24"},
			"the following directives are specified both as a flag and in the configuration file: bip: (from flag: 10.1.0.1/24, from file: 10.2.0.1/24)"},
		{"two conflicts", `{"mtu": 1400, "dns": ["1.1.1.1"]}`, []string{"--mtu", "1500", "--dns", "8.8.8.8"},
			"the following directives are specified both as a flag and in the configuration file: dns: (from flag: [8.8.8.8], from file: [1.1.1.1]), mtu: (from flag: 1500, from file: 1400)"},
		{"unknown key", `{"bogus": 1, "bip": "10.2.0.1/24"}`, nil,
			"the following directives don't match any configuration option: bogus"},
		{"docker key berth lacks", `{"storage-driver": "vfs"}`, nil,
			"the following directives don't match any configuration option: storage-driver"},
		{"mtu string", `{"mtu": "1400"}`, nil, "json: cannot unmarshal string into Go struct field Config.mtu of type int"},
		{"iptables string", `{"iptables": "no"}`, nil, "json: cannot unmarshal string into Go struct field Config.iptables of type bool"},
		// dockerd (its own decoder of pools) says "Config.default-address-pools of type int".
		{"pool size string", `{"default-address-pools": [{"base": "10.10.0.0/16", "size": "24"}]}`, nil,
			"json: cannot unmarshal string into Go struct field Pool.default-address-pools.size of type int"},
		{"syntax", `{bad json`, nil, "invalid character 'b' looking for beginning of object key string"},
		// dockerd: "Error initializing network controller: ... Invalid Address Pool" at start.
		{"pool size too large", `{"default-address-pools": [{"base": "10.10.0.0/16", "size": 33}]}`, nil,
			`invalid default-address-pools "base=10.10.0.0/16,size=33": invalid pools size: 33 (want 16 to 32 for base 10.10.0.0/16)`},
		{"mtu not a number", `{"mtu": 1400.5}`, nil, "json: cannot unmarshal number 1400.5 into Go struct field Config.mtu of type int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFlags()
			if err := f.fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			p := writeFile(t, tc.body)
			err := ApplyConfigFile(f.fs, p, true)
			want := "unable to configure the berth daemon with file " + p + ": " + tc.want
			if err == nil || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
		})
	}
}

func TestConfigFileMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "daemon.json")
	if err := ApplyConfigFile(newTestFlags().fs, p, false); err != nil {
		t.Errorf("missing default file: got %v, want nil", err)
	}
	// dockerd: unable to configure the Docker daemon with file /nonexistent.json: open
	// /nonexistent.json: no such file or directory
	want := "unable to configure the berth daemon with file " + p + ": open " + p + ": no such file or directory"
	if err := ApplyConfigFile(newTestFlags().fs, p, true); err == nil || err.Error() != want {
		t.Errorf("missing given file: got %v, want %s", err, want)
	}
}

// TestPoolFlag has dockerd's answers to --default-address-pool where it checks the flag
// itself (invalid argument "..." for "--default-address-pool" flag: ..., from pflag).
func TestPoolFlag(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"base=10.0.0.0/8,size=x", `invalid size value: "x" (must be integer): strconv.Atoi: parsing "x": invalid syntax`},
		{"foo=1", "unexpected key 'foo' in 'foo=1'"},
		{"base", "invalid field 'base' must be a key=value pair"},
		// dockerd's next three come at start: "invalid base pool ...", "invalid pools size: 0".
		{"base=10.0.0.0/33,size=24", `invalid base pool "10.0.0.0/33": invalid CIDR address: 10.0.0.0/33`},
		{"base=10.0.0.0/8", "invalid pools size: 0 (want 8 to 32 for base 10.0.0.0/8)"},
		{"base=10.0.0.0/16,size=8", "invalid pools size: 8 (want 16 to 32 for base 10.0.0.0/16)"},
		{"size=24", "base=CIDR missing"},
		{"base=fd00::/48,size=64", `invalid base pool "fd00::/48": only IPv4 pools are supported`},
	} {
		if _, err := ParsePool(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %s", tc.in, err, tc.want)
		}
	}
	p, err := ParsePool("BASE=10.1.2.0/16,size=24")
	if err != nil || p != (netmgr.Pool{Base: netip.MustParsePrefix("10.1.0.0/16"), Size: 24}) {
		t.Errorf("got %v, %v; want base 10.1.0.0/16 (masked), size 24", p, err)
	}
}

func TestValidateBridgeAndSocket(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"bip", func(c *Config) { c.Bridge.BIP = pfx("192.168.5.1/24") }, ""},
		{"bip network address", func(c *Config) { c.Bridge.BIP = pfx("10.1.0.0/24") },
			`invalid bip "10.1.0.0/24": the network or broadcast address of 10.1.0.0/24, not a gateway address`},
		{"bip IPv6", func(c *Config) { c.Bridge.BIP = pfx("fd00::1/64") }, `invalid bip "fd00::1/64": not an IPv4 address`},
		{"fixed-cidr outside bip", func(c *Config) { c.Bridge.BIP, c.Bridge.FixedCIDR = pfx("10.5.0.1/24"), pfx("10.6.7.0/24") },
			`invalid fixed-cidr "10.6.7.0/24": not inside bip 10.5.0.1/24`},
		{"fixed-cidr-v6 IPv4", func(c *Config) { c.Bridge.FixedCIDRv6 = pfx("10.0.0.0/24") }, `invalid fixed-cidr-v6 "10.0.0.0/24": not an IPv6 subnet`},
		// dockerd: invalid MTU number: -5 (at start).
		{"mtu negative", func(c *Config) { c.Bridge.MTU = -5 }, "invalid mtu -5: want 68 to 65535"},
		{"unix://", func(c *Config) { c.Socket = "unix:///tmp/x/b.sock" }, ""},
		{"tcp without TLS", func(c *Config) { c.Socket = "tcp://127.0.0.1:2376" },
			`invalid socket "tcp://127.0.0.1:2376": tcp:// needs mutual TLS: --tlsverify --tlscacert FILE --tlscert FILE --tlskey FILE`},
		{"tcp without verify", func(c *Config) {
			c.Socket, c.TLS = "tcp://127.0.0.1:2376", TLSConfig{CACert: "a", Cert: "b", Key: "c"}
		}, `invalid socket "tcp://127.0.0.1:2376": tcp:// needs mutual TLS: --tlsverify --tlscacert FILE --tlscert FILE --tlskey FILE`},
		{"tcp without port", func(c *Config) { c.Socket = "tcp://127.0.0.1" }, `invalid socket "tcp://127.0.0.1": want tcp://HOST:PORT`},
		{"tcp with missing files", func(c *Config) {
			c.Socket, c.TLS = "tcp://127.0.0.1:2376", TLSConfig{Verify: true, CACert: "/nonexistent/ca", Cert: "/nonexistent/c", Key: "/nonexistent/k"}
		}, `invalid tlscert "/nonexistent/c" or tlskey "/nonexistent/k": open /nonexistent/c: no such file or directory`},
		{"other scheme", func(c *Config) { c.Socket = "fd://3" }, `invalid socket "fd://3": want unix://PATH, a path, or tcp://HOST:PORT`},
		{"dns cache", func(c *Config) { c.DNSCacheSize, c.DNSCacheMemory = 100, 1<<20 }, ""},
		{"dns cache off", func(c *Config) { c.DNSCacheSize, c.DNSCacheMemory = 0, 0 }, ""},
		{"dns cache negative", func(c *Config) { c.DNSCacheSize, c.DNSCacheMemory = -1, 1<<20 },
			"invalid dns-cache-size -1: negative (0 turns the cache off)"},
		{"dns cache memory too small", func(c *Config) { c.DNSCacheSize, c.DNSCacheMemory = 100, 4096 },
			"invalid dns-cache-memory 4096: below the minimum of 1MiB (--dns-cache-size 0 turns the cache off)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Root: "/var/lib/berth", Socket: "/run/berth/berth.sock"}
			tc.change(&c)
			err := c.validate()
			if got := errString(err); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	c := Config{Root: "/r", Socket: "unix:///tmp/x/b.sock"}
	if err := c.validate(); err != nil || c.ExecRoot != "/tmp/x" || c.listen.addr != "/tmp/x/b.sock" {
		t.Errorf("unix://: got %v, exec-root %q, path %q; want /tmp/x and /tmp/x/b.sock", err, c.ExecRoot, c.listen.addr)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
