package main

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"berth/api"
	"berth/daemon"
)

// defaultFirewallCheck is the period of the firewall check when no change is seen: the
// nftables monitor catches changes at once, so this is the bound for what it misses.
const defaultFirewallCheck = 10 * time.Second

// newDaemonCmd is `berth daemon`: its flags become a daemon.Config, and package daemon
// does the rest (and checks the fields the flags leave untyped).
func newDaemonCmd() *cobra.Command {
	var (
		cfg   daemon.Config
		level string
		dns   []string
	)
	cmd := &cobra.Command{
		Use:   "daemon [flags]",
		Short: "Run the berth daemon (as root)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := parseDaemonFlags(&cfg, level, dns); err != nil {
				return err
			}
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
	return cmd
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
