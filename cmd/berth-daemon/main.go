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
		cfg   daemon.Config
		level string
		dns   []string
		kvOpt []string
	)
	cmd := &cobra.Command{
		Use:           "berth daemon [flags]",
		Short:         "Run the berth daemon (as root)",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := parseDaemonFlags(&cfg, level, dns); err != nil {
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
	f.StringVar(&cfg.Socket, "socket", api.DefaultSocket, "API unix socket")
	f.StringVar(&cfg.ExecRoot, "exec-root", "", "runtime directory, best a tmpfs: sandbox file copies for runtimes, create intents (default: the socket's directory)")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "host resolv.conf with the upstream servers")
	f.StringArrayVar(&dns, "dns", nil, "upstream DNS server for sandboxes (repeatable)")
	f.StringArrayVar(&cfg.DNSSearch, "dns-search", nil, "DNS search domain for sandboxes (repeatable)")
	f.StringArrayVar(&cfg.DNSOptions, "dns-option", nil, "resolv.conf option for sandboxes (repeatable)")
	f.BoolVar(&cfg.IPForward, "ip-forward", true, "enable IP forwarding when a non-internal network exists")
	f.StringVar(&cfg.Metrics, "metrics-addr", "", "also serve Prometheus /metrics on this TCP address (e.g. 127.0.0.1:9323)")
	f.BoolVar(&cfg.ICC, "icc", true, "allow traffic between sandboxes on the default bridge (false: only --link pairs)")
	f.StringVarP(&cfg.Group, "group", "G", "", "group (name or GID) given the API socket, root:GROUP 0660, like dockerd's docker group")
	f.DurationVar(&cfg.FirewallCheck, "firewall-check-interval", defaultFirewallCheck, "how often to check berth's nftables rules and repair them (also done after other programs change the ruleset; 0: only then)")
	f.StringVar(&cfg.Cluster.Store, "cluster-store", "", "cluster store of overlay networks: etcd://IP:PORT[,IP:PORT...] (Docker's legacy flag)")
	f.StringVar(&cfg.Cluster.Advertise, "cluster-advertise", "", "this host's underlay IP address, where the other hosts send its overlay traffic")
	f.StringArrayVar(&kvOpt, "cluster-store-opt", nil, "cluster store TLS: kv.cacertfile=PATH,kv.certfile=PATH,kv.keyfile=PATH (repeatable)")
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
func parseDaemonFlags(cfg *daemon.Config, level string, dns []string) error {
	if err := cfg.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("invalid log-level %q: want debug, info, warn or error", level)
	}
	for _, s := range dns {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("invalid dns %q: not an IP address", s)
		}
		cfg.DNS = append(cfg.DNS, a)
	}
	return nil
}
