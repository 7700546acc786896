package daemon

// The daemon's configuration: what `berth daemon` was started with (flags, daemon.json),
// checked before anything is touched.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth/api"
	"berth/netmgr"
	"berth/resolver"
)

// The forward cache's defaults: 10,000 answers (CoreDNS's cache holds 9,984 of each kind)
// in at most 16 MiB; a typical answer takes a few hundred bytes, so the count binds first.
const (
	DefaultDNSCacheSize   = 10000
	DefaultDNSCacheMemory = "16MiB"
)

// minDNSCacheMemory is the smallest --dns-cache-memory taken with a cache on: below it
// the cache could not hold one large answer per shard.
const minDNSCacheMemory = 1 << 20

// Config is what `berth daemon` was started with.
type Config struct {
	Root       string // state dir: state.db
	Socket     string // --socket: the API's unix socket (a path, unix://PATH) or tcp://HOST:PORT with TLS
	ExecRoot   string // runtime files that a reboot may clear, like the kernel objects: sandbox file copies, create intents, dnsd's clean list
	LogLevel   slog.Level
	ResolvConf string       // the host's resolv.conf, source of upstream servers
	DNS        []netip.Addr // --dns: upstreams for every sandbox without its own
	DNSSearch  []string     // --dns-search
	DNSOptions []string     // --dns-option
	// DNSCacheSize is --dns-cache-size: entries of the embedded DNS's forward cache, shared
	// by every sandbox (0: no cache); DNSCacheMemory (--dns-cache-memory) bounds its bytes.
	DNSCacheSize   int
	DNSCacheMemory int64
	IPForward      bool   // --ip-forward: enable the kernel's forwarding for non-internal networks
	ICC            bool   // --icc: sandboxes on the default bridge may talk to each other
	Metrics        string // --metrics-addr: also serve /metrics on this TCP address
	Group          string // --group: the group that owns the API socket ("": root's)
	// DockerSocket is --docker-socket: also serve Docker's Engine API (network part) on
	// this unix socket, with the API socket's mode and group, or on tcp://HOST:PORT with
	// TLS's mutual TLS ("": not served).
	DockerSocket string
	// FirewallCheck is --firewall-check-interval: how often the firewall is checked and
	// repaired besides after other programs' changes (0: only after those).
	FirewallCheck time.Duration
	// Cluster is the cluster store of overlay networks; zero: none.
	Cluster ClusterConfig
	// Bridge is the default bridge's configuration: --bip, --fixed-cidr, --ipv6,
	// --fixed-cidr-v6, --mtu and --ip-masq.
	Bridge netmgr.BridgeDefaults
	// Pools is --default-address-pool (repeatable); nil: Docker's default pools.
	Pools []netmgr.Pool
	// IPTables is --iptables: false installs no nftables rules at all (no NAT, isolation
	// or DNAT; published ports go through the userland proxy).
	IPTables bool
	// TLS is --tlsverify with its files, required by a tcp:// Socket.
	TLS TLSConfig

	socketGID    int        // Group resolved by validate; -1 leaves the socket's group as created
	listen       listenAddr // Socket parsed by validate
	dockerListen listenAddr // DockerSocket parsed by validate
}

// validate checks the fields the flags do not type, so a typo stops the daemon before it
// touches anything, and fills in the derived ones (ExecRoot's default, the socket's GID).
func (c *Config) validate() error {
	for _, d := range c.DNSSearch {
		if !printableWord(d) {
			return fmt.Errorf("invalid dns-search %q: not a domain", d)
		}
	}
	for _, o := range c.DNSOptions {
		if !printableWord(o) || strings.ContainsAny(o, "#;") {
			return fmt.Errorf("invalid dns-option %q: want one resolv.conf option", o)
		}
	}
	if c.DNSCacheSize < 0 {
		return fmt.Errorf("invalid dns-cache-size %d: negative (0 turns the cache off)", c.DNSCacheSize)
	}
	if c.DNSCacheSize > 0 && c.DNSCacheMemory < minDNSCacheMemory {
		return fmt.Errorf("invalid dns-cache-memory %d: below the minimum of 1MiB (--dns-cache-size 0 turns the cache off)", c.DNSCacheMemory)
	}
	if c.FirewallCheck < 0 {
		return fmt.Errorf("invalid firewall-check-interval %s: negative", c.FirewallCheck)
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if err := c.validateBridge(); err != nil {
		return err
	}
	if c.Root == "" || c.Socket == "" {
		return errors.New("invalid daemon flags: --root and --socket must not be empty")
	}
	l, err := parseListen("socket", c.Socket, c.TLS)
	if err != nil {
		return err
	}
	c.listen = l
	if err := c.validateDockerSocket(); err != nil {
		return err
	}
	if c.ExecRoot == "" {
		c.ExecRoot = filepath.Dir(api.DefaultSocket)
		if l.network == "unix" {
			c.ExecRoot = filepath.Dir(l.addr)
		}
	}
	c.socketGID = -1
	if c.Group != "" {
		gid, err := lookupGroup(c.Group)
		if err != nil {
			return fmt.Errorf("invalid group %q: %w", c.Group, err)
		}
		c.socketGID = gid
	}
	return nil
}

// validateBridge checks what the flags of the default bridge cannot check one by one.
func (c *Config) validateBridge() error {
	b := c.Bridge
	if p := b.BIP; p.IsValid() {
		if !p.Addr().Is4() {
			return fmt.Errorf("invalid bip %q: not an IPv4 address", p)
		}
		if p.Bits() < 31 && (p.Addr() == p.Masked().Addr() || p.Addr() == lastAddr4(p)) {
			return fmt.Errorf("invalid bip %q: the network or broadcast address of %s, not a gateway address", p, p.Masked())
		}
	}
	if r := b.FixedCIDR; r.IsValid() {
		if !r.Addr().Is4() {
			return fmt.Errorf("invalid fixed-cidr %q: not an IPv4 subnet", r)
		}
		if bip := b.BIP.Masked(); b.BIP.IsValid() && (!bip.Contains(r.Addr()) || r.Bits() < bip.Bits()) {
			return fmt.Errorf("invalid fixed-cidr %q: not inside bip %s", r, b.BIP)
		}
	}
	if r := b.FixedCIDRv6; r.IsValid() && !r.Addr().Is6() {
		return fmt.Errorf("invalid fixed-cidr-v6 %q: not an IPv6 subnet", r)
	}
	if b.MTU != 0 && (b.MTU < 68 || b.MTU > 65535) {
		return fmt.Errorf("invalid mtu %d: want 68 to 65535", b.MTU)
	}
	return nil
}

// lastAddr4 is the broadcast address of an IPv4 prefix.
func lastAddr4(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// hostDNS reads the host's resolv.conf afresh each time netmgr renders a sandbox's files, so
// a changed host file reaches sandboxes created or reconnected afterwards.
func (c Config) hostDNS() resolver.HostConfig {
	b, _ := os.ReadFile(c.ResolvConf) // missing: sandboxes get no host upstreams
	hc := resolver.HostConfig{
		ResolvConfPath: c.ResolvConf,
		ResolvConf:     b,
		DNSSearch:      c.DNSSearch,
		DNSOptions:     c.DNSOptions,
	}
	for _, a := range c.DNS {
		hc.DNS = append(hc.DNS, a.String())
	}
	return hc
}

// printableWord reports whether s is non-empty printable ASCII without spaces, all that may
// go into a resolv.conf line without changing its shape.
func printableWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}
