package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"berth/daemon"
)

// TestConfigFileFlags applies a daemon.json with every key berth reads to the real command's
// flags: each key must have its flag, and the typed Config must come out of it.
func TestConfigFileFlags(t *testing.T) {
	p := filepath.Join(t.TempDir(), "daemon.json")
	body := `{"bip": "192.168.5.1/24", "fixed-cidr": "192.168.5.128/25", "fixed-cidr-v6": "2001:db8::/64",
		"ipv6": true, "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}],
		"dns": ["1.1.1.1"], "dns-search": ["example.com"], "dns-opts": ["ndots:2"], "mtu": 1400,
		"iptables": false, "ip-masq": false, "icc": false, "ip-forward": false, "log-level": "debug", "group": "0",
		"data-root": "/srv/berth", "exec-root": "/run/b", "metrics-addr": "127.0.0.1:9323",
		"cluster-store": "etcd://10.0.0.1:2379", "cluster-advertise": "10.0.0.2",
		"cluster-store-opts": {"kv.certfile": "c.pem"},
		"tlsverify": true, "tlscacert": "ca.pem", "tlscert": "cert.pem", "tlskey": "key.pem",
		"dns-cache-size": 500, "dns-cache-memory": "4MiB"}`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newDaemonCmd()
	if err := cmd.Flags().Parse([]string{"--config-file", p}); err != nil {
		t.Fatal(err)
	}
	if err := daemon.ApplyConfigFile(cmd.Flags(), p, true); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bip", "mtu", "iptables", "ip-masq", "default-address-pool", "tlskey", "root", "dns-option", "dns-cache-size", "dns-cache-memory"} {
		if f := cmd.Flags().Lookup(name); f == nil || f.Value.String() == f.DefValue {
			t.Errorf("--%s not set from the file", name)
		}
	}
	var b bridgeFlags
	b.bip, b.fixedCIDR = cmd.Flags().Lookup("bip").Value.String(), cmd.Flags().Lookup("fixed-cidr").Value.String()
	var cfg daemon.Config
	if err := b.parse(&cfg); err != nil || cfg.Bridge.BIP != netip.MustParsePrefix("192.168.5.1/24") || !cfg.Bridge.NoIPMasq {
		t.Errorf("bridge flags: got %+v, %v", cfg.Bridge, err)
	}
}

func TestBridgeFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		b    bridgeFlags
		want string
	}{
		// dockerd: Error initializing network controller: invalid CIDR address: 10.1.0.1
		{bridgeFlags{bip: "10.1.0.1", ipMasq: true}, `invalid bip "10.1.0.1": invalid CIDR address (want ADDRESS/PREFIX, e.g. 192.168.5.1/24)`},
		{bridgeFlags{fixedCIDR: "10.1.0.0/33", ipMasq: true}, `invalid fixed-cidr "10.1.0.0/33": invalid CIDR address (want ADDRESS/PREFIX, e.g. 192.168.5.1/24)`},
		{bridgeFlags{fixedCIDRv6: "2001:db8::", ipMasq: true}, `invalid fixed-cidr-v6 "2001:db8::": invalid CIDR address (want ADDRESS/PREFIX, e.g. 192.168.5.1/24)`},
	} {
		var cfg daemon.Config
		if err := tc.b.parse(&cfg); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
}

// TestDNSCacheFlags: --dns-cache-memory takes Docker's size syntax; a bad one or a bad
// --dns-cache-size is one line naming the flag.
func TestDNSCacheFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error; "" for none
		mem  int64
	}{
		{nil, "", 16 << 20},
		{[]string{"--dns-cache-memory", "512k"}, "", 512 << 10},
		{[]string{"--dns-cache-memory", "2g"}, "", 2 << 30},
		{[]string{"--dns-cache-memory", "lots"}, `invalid dns-cache-memory "lots": want a size such as 16MiB or 512k`, 0},
		{[]string{"--dns-cache-size", "many"}, `invalid argument "many" for "--dns-cache-size" flag: strconv.ParseInt: parsing "many": invalid syntax`, 0},
	} {
		cmd := newDaemonCmd()
		err := cmd.Flags().Parse(tc.args)
		var cfg daemon.Config
		if err == nil {
			mem, _ := cmd.Flags().GetString("dns-cache-memory")
			err = parseDaemonFlags(&cfg, "info", nil, mem)
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%v: got %v, want %s", tc.args, err, tc.want)
		case tc.want == "" && cfg.DNSCacheMemory != tc.mem:
			t.Errorf("%v: memory %d, want %d", tc.args, cfg.DNSCacheMemory, tc.mem)
		}
	}
}
