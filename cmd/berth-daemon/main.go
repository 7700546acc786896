// Command berth-daemon is the berth daemon: `berth daemon ARGS` executes it with ARGS, as git
// runs git-foo for `git foo`. It is its own executable so that what only the daemon needs
// (netlink, nftables, memdb, bbolt, miekg/dns, and with --cluster-store the etcd client and
// gRPC) is neither loaded nor initialised by every client command: measured here, linking
// the etcd client into the CLI took `berth network ls` from 4.4 ms to 7.0 ms (2.5 ms of
// package init alone). The daemon itself is package berth/daemon.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/docker/go-units"

	"berth/api"

	"berth/daemon"
)

// defaultFirewallCheck is the period of the firewall check when no change is seen: the
// nftables monitor catches changes at once, so this is the bound for what it misses.
const defaultFirewallCheck = 10 * time.Second

func main() {
	err := newDaemonCmd().ExecuteContext(context.Background())
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// newDaemonCmd is `berth daemon`: its flags become a daemon.Config, and package daemon
// does the rest (and checks the fields the flags leave untyped).
func newDaemonCmd() *cobra.Command {
	var (
		cfg        daemon.Config
		level      string
		dns        []string
		kvOpt      []string
		bridge     bridgeFlags
		configFile string
		cacheMem   string
	)
	cmd := &cobra.Command{
		Use:           "berth daemon [flags]",
		Short:         "Run the berth daemon (as root)",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// daemon.json's values go through the flags, parsed and checked as those.
			if err := daemon.ApplyConfigFile(cmd.Flags(), configFile, cmd.Flags().Changed("config-file")); err != nil {
				return err
			}
			if err := parseDaemonFlags(&cfg, level, dns, cacheMem); err != nil {
				return err
			}
			if err := bridge.parse(&cfg); err != nil {
				return err
			}
			opts, err := parseClusterOpts(kvOpt)
			if err != nil {
				return err
			}
			cfg.Cluster.Opts = opts
			return daemon.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Root, "root", "/var/lib/berth", "state directory")
	f.StringVar(&cfg.Socket, "socket", api.DefaultSocket, "API socket: a path, unix://PATH, or tcp://HOST:PORT with --tlsverify --tlscacert --tlscert --tlskey")
	f.StringVar(&cfg.DockerSocket, "docker-socket", "", "also serve Docker's Engine API (networks, events) here, for docker's CLI and SDKs: a unix socket path (DOCKER_HOST=unix://PATH), or tcp://HOST:PORT with the --tlsverify files, as dockerd -H")
	f.StringVar(&cfg.ExecRoot, "exec-root", "", "runtime directory, best a tmpfs: sandbox file copies for runtimes, create intents (default: the socket's directory)")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "host resolv.conf with the upstream servers")
	f.StringArrayVar(&dns, "dns", nil, "upstream DNS server for sandboxes (repeatable)")
	f.StringArrayVar(&cfg.DNSSearch, "dns-search", nil, "DNS search domain for sandboxes (repeatable)")
	f.StringArrayVar(&cfg.DNSOptions, "dns-option", nil, "resolv.conf option for sandboxes (repeatable)")
	f.IntVar(&cfg.DNSCacheSize, "dns-cache-size", daemon.DefaultDNSCacheSize, "answers from upstream DNS servers the embedded DNS keeps, for every sandbox together (0: none, every query goes upstream)")
	f.StringVar(&cacheMem, "dns-cache-memory", daemon.DefaultDNSCacheMemory, "memory those answers may take at most, e.g. 16MiB or 512k (the oldest unused go first)")
	f.BoolVar(&cfg.IPForward, "ip-forward", true, "enable IP forwarding when a non-internal network exists")
	f.StringVar(&cfg.Metrics, "metrics-addr", "", "also serve Prometheus /metrics on this TCP address (e.g. 127.0.0.1:9323)")
	f.BoolVar(&cfg.ICC, "icc", true, "allow traffic between sandboxes on the default bridge (false: only --link pairs)")
	f.StringVarP(&cfg.Group, "group", "G", "", "group (name or GID) given the API socket, root:GROUP 0660, like dockerd's docker group")
	f.DurationVar(&cfg.FirewallCheck, "firewall-check-interval", defaultFirewallCheck, "how often to check berth's nftables rules and repair them (also done after other programs change the ruleset; 0: only then)")
	f.StringVar(&cfg.Cluster.Store, "cluster-store", "", "cluster store of overlay networks: etcd://IP:PORT[,IP:PORT...] (Docker's legacy flag)")
	f.StringVar(&cfg.Cluster.Advertise, "cluster-advertise", "", "this host's underlay IP address, where the other hosts send its overlay traffic")
	f.StringArrayVar(&kvOpt, "cluster-store-opt", nil, "cluster store TLS: kv.cacertfile=PATH,kv.certfile=PATH,kv.keyfile=PATH (repeatable)")
	f.StringVar(&configFile, "config-file", daemon.DefaultConfigFile, "daemon.json with Docker's keys (a missing default file is fine)")
	f.StringVar(&bridge.bip, "bip", "", "the default bridge's gateway address and subnet, e.g. 192.168.5.1/24")
	f.StringVar(&bridge.fixedCIDR, "fixed-cidr", "", "the default bridge's dynamic addresses come from this part of its subnet")
	f.BoolVar(&cfg.Bridge.IPv6, "ipv6", false, "give the default bridge an IPv6 subnet (--fixed-cidr-v6)")
	f.StringVar(&bridge.fixedCIDRv6, "fixed-cidr-v6", "", "the default bridge's IPv6 subnet, with --ipv6")
	f.Var(daemon.PoolsValue{Pools: &cfg.Pools}, "default-address-pool", "subnets of networks without --subnet (and the default bridge without --bip): base=CIDR,size=N (repeatable; replaces Docker's default pools)")
	f.IntVar(&cfg.Bridge.MTU, "mtu", 0, "MTU of the default bridge and its sandboxes' veths (0: the kernel's, 1500)")
	f.BoolVar(&cfg.IPTables, "iptables", true, "install nftables rules (false: none at all: no NAT, isolation or DNAT; published ports through the userland proxy)")
	f.BoolVar(&bridge.ipMasq, "ip-masq", true, "masquerade the default bridge's traffic to other networks")
	f.BoolVar(&cfg.TLS.Verify, "tlsverify", false, "require and verify client certificates (needed for a tcp:// --socket)")
	f.StringVar(&cfg.TLS.CACert, "tlscacert", "", "CA certificate (PEM) client certificates must be signed by")
	f.StringVar(&cfg.TLS.Cert, "tlscert", "", "the daemon's TLS certificate (PEM)")
	f.StringVar(&cfg.TLS.Key, "tlskey", "", "the daemon's TLS key (PEM)")
	return cmd
}

// parseClusterOpts turns --cluster-store-opt KEY=VALUE[,KEY=VALUE...] (repeatable) into a
// map; which keys are valid is package cluster's to say.
func parseClusterOpts(list []string) (map[string]string, error) {
	var out map[string]string
	for _, item := range list {
		for _, kv := range strings.Split(item, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				return nil, fmt.Errorf("invalid cluster-store-opt %q: want KEY=VALUE", kv)
			}
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out, nil
}

// parseDaemonFlags types the flags that are not plain strings into cfg.
func parseDaemonFlags(cfg *daemon.Config, level string, dns []string, cacheMem string) error {
	if err := cfg.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("invalid log-level %q: want debug, info, warn or error", level)
	}
	// Docker's size syntax (--memory, --shm-size): binary units, "16m" = "16MiB".
	n, err := units.RAMInBytes(cacheMem)
	if err != nil {
		return fmt.Errorf("invalid dns-cache-memory %q: want a size such as 16MiB or 512k", cacheMem)
	}
	cfg.DNSCacheMemory = n
	for _, s := range dns {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("invalid dns %q: not an IP address", s)
		}
		cfg.DNS = append(cfg.DNS, a)
	}
	return nil
}

// bridgeFlags are the default bridge's flags that are not typed by pflag.
type bridgeFlags struct {
	bip, fixedCIDR, fixedCIDRv6 string
	ipMasq                      bool
}

// parse types them into cfg.Bridge; daemon.Config.validate checks them together.
func (b bridgeFlags) parse(cfg *daemon.Config) error {
	for _, f := range []struct {
		name, text string
		dst        *netip.Prefix
	}{
		{"bip", b.bip, &cfg.Bridge.BIP},
		{"fixed-cidr", b.fixedCIDR, &cfg.Bridge.FixedCIDR},
		{"fixed-cidr-v6", b.fixedCIDRv6, &cfg.Bridge.FixedCIDRv6},
	} {
		if f.text == "" {
			continue
		}
		p, err := netip.ParsePrefix(f.text)
		if err != nil || p.Addr().Zone() != "" {
			return fmt.Errorf("invalid %s %q: invalid CIDR address (want ADDRESS/PREFIX, e.g. 192.168.5.1/24)", f.name, f.text)
		}
		*f.dst = p
	}
	cfg.Bridge.NoIPMasq = !b.ipMasq
	return nil
}
