package main

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"berth/api"
	"berth/internal/filters"
)

// newSandboxCmd groups the sandbox commands; each is a thin client of one API call.
func newSandboxCmd(o *globalOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Manage sandboxes (named network namespaces)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		newSandboxCreateCmd(o),
		newSandboxLsCmd(o, "ls"),
		newSandboxInspectCmd(o),
		newSandboxRmCmd(o),
		newSandboxRenameCmd(o),
		newSandboxPortCmd(o),
	)
	return cmd
}

// sandboxPath is /sandboxes/REF[/SUFFIX] with REF escaped.
func sandboxPath(ref string, suffix ...string) string {
	p := "/sandboxes/" + url.PathEscape(ref)
	for _, s := range suffix {
		p += "/" + s
	}
	return p
}

// addSandboxFlags registers the flags `sandbox create` and `run` share, writing into req.
func addSandboxFlags(f *pflag.FlagSet, req *api.SandboxCreate) {
	f.StringVar(&req.Name, "name", "", "sandbox name (default: a generated one)")
	// -h is hostname, as in `docker run`. Defining --help here first stops cobra from
	// adding its own with -h (which would panic on the clash).
	f.StringVarP(&req.Hostname, "hostname", "h", "", "hostname (default: the sandbox name)")
	f.StringVar(&req.Domainname, "domainname", "", "NIS domain name of the sandbox's UTS namespace")
	f.Bool("help", false, "help for this command")
	f.StringArrayVar(&req.Networks, "network", nil, "NET, none, host or container:NAME (repeatable; default bridge)")
	f.StringArrayVar(&req.Aliases, "network-alias", nil, "alias on the first network (repeatable)")
	f.StringVar(&req.IPv4, "ip", "", "IPv4 address on the first network")
	f.StringVar(&req.IPv6, "ip6", "", "IPv6 address on the first network")
	f.StringVar(&req.MAC, "mac-address", "", "MAC address on the first network")
	f.StringArrayVar(&req.Links, "link", nil, "link to another sandbox, NAME[:ALIAS] (repeatable)")
	f.StringArrayVar(&req.DNS, "dns", nil, "upstream DNS server (repeatable)")
	f.StringArrayVar(&req.DNSSearch, "dns-search", nil, "DNS search domain (repeatable)")
	f.StringArrayVar(&req.DNSOptions, "dns-option", nil, "resolv.conf option (repeatable)")
	f.StringArrayVar(&req.ExtraHosts, "add-host", nil, "extra hosts entry HOST:IP (repeatable)")
	f.Var(keyValueFlag{&req.Labels}, "label", "label KEY=VALUE (repeatable; commas stay in the value)")
	f.StringVar(&req.NetNS, "netns", "", "adopt an existing network namespace (a path like /proc/PID/ns/net) instead of making one")
	f.StringArrayVarP(&req.Publish, "publish", "p", nil, "publish a port or a range, [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/tcp|/udp] (repeatable)")
	f.StringArrayVar(&req.Expose, "expose", nil, "expose a port or a range to legacy links, PORT[-END][/tcp|/udp] (repeatable)")
	f.BoolVarP(&req.PublishAll, "publish-all", "P", false, "publish every exposed port on an ephemeral host port")
}

// newSandboxPortCmd builds `sandbox port`: the published ports, as `docker port` prints
// them, with the host address each socket is bound to (0.0.0.0 and [::] for a port
// published without a host IP). With PORT[/PROTO], only that port's host addresses.
func newSandboxPortCmd(o *globalOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "port SANDBOX [PORT[/PROTO]]",
		Short: "List the published ports of a sandbox",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("%q requires 1 or 2 arguments: SANDBOX [PORT[/PROTO]]", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var sb api.Sandbox
			if err := c.get(cmd.Context(), sandboxPath(args[0]), &sb); err != nil {
				return err
			}
			if len(args) == 2 {
				k := args[1]
				if !strings.Contains(k, "/") {
					k += "/tcp"
				}
				if len(sb.Ports[k]) == 0 {
					return fmt.Errorf("no public port %q published for sandbox %s", k, args[0])
				}
				for _, b := range sb.Ports[k] {
					fmt.Fprintln(o.stdout, net.JoinHostPort(b.HostIP, b.HostPort))
				}
				return nil
			}
			keys := make([]string, 0, len(sb.Ports))
			for k := range sb.Ports {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				for _, b := range sb.Ports[k] {
					fmt.Fprintf(o.stdout, "%s -> %s\n", k, net.JoinHostPort(b.HostIP, b.HostPort))
				}
			}
			return nil
		},
		ValidArgsFunction: completeFirstSandbox(o, false),
	}
}

// createSandbox asks the daemon for a sandbox and returns its ID and name.
func createSandbox(cmd *cobra.Command, o *globalOpts, req api.SandboxCreate) (api.IDResponse, error) {
	var resp api.IDResponse
	c, err := o.client()
	if err != nil {
		return resp, err
	}
	err = c.post(cmd.Context(), "/sandboxes", req, &resp)
	return resp, err
}

// newSandboxCreateCmd builds `sandbox create`. It prints the full ID like `docker create`;
// the generated name, if any, is in `sandbox ls`.
func newSandboxCreateCmd(o *globalOpts) *cobra.Command {
	var req api.SandboxCreate
	cmd := &cobra.Command{
		Use:   "create [flags]",
		Short: "Create a sandbox and print its ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := createSandbox(cmd, o, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(o.stdout, resp.ID)
			return nil
		},
	}
	addSandboxFlags(cmd.Flags(), &req)
	registerNetworkFlag(cmd, o)
	return cmd
}

// newSandboxLsCmd builds `sandbox ls`; use lets the same command serve as `berth ps`.
func newSandboxLsCmd(o *globalOpts, use string) *cobra.Command {
	var lf listFormat
	var filter []string
	cmd := &cobra.Command{
		Use:   use + " [flags]",
		Short: "List sandboxes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lt, err := sandboxLister.compile(lf, o.stderr)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			args, err := filters.Parse(filter)
			if err != nil {
				return err
			}
			sbs, err := c.Sandboxes(cmd.Context(), args)
			if err != nil {
				return err
			}
			return sandboxLister.write(o.stdout, lt, sbs, !lf.noTrunc)
		},
	}
	if use == "ls" {
		cmd.Aliases = []string{"list"}
	}
	lf.addFlags(cmd.Flags(), "sandbox", sandboxFields)
	cmd.Flags().StringArrayVarP(&filter, "filter", "f", nil, "KEY=VALUE: name, id, label, network, publish=PORT[/PROTO], expose=PORT[/PROTO] (repeatable)")
	return cmd
}

// sandboxNetworks returns the network names and addresses of sb in interface order (eth0,
// eth1, ...), which is join order; the Networks map itself has none.
func sandboxNetworks(sb api.Sandbox) (names, addrs []string) {
	type ep struct {
		name string
		es   api.EndpointSettings
	}
	eps := make([]ep, 0, len(sb.Networks))
	for name, es := range sb.Networks {
		eps = append(eps, ep{name, es})
	}
	slices.SortFunc(eps, func(a, b ep) int {
		return cmp.Or(cmp.Compare(ifIndex(a.es.InterfaceName), ifIndex(b.es.InterfaceName)),
			strings.Compare(a.name, b.name))
	})
	for _, e := range eps {
		names = append(names, e.name)
		for _, a := range []string{e.es.IPAddress, e.es.GlobalIPv6Address} {
			if a != "" {
				addrs = append(addrs, a)
			}
		}
	}
	return names, addrs
}

// ifIndex is N of "ethN" (so eth10 sorts after eth9), or -1.
func ifIndex(name string) int {
	n, err := strconv.Atoi(strings.TrimLeft(name, "abcdefghijklmnopqrstuvwxyz"))
	if err != nil {
		return -1
	}
	return n
}

// newSandboxInspectCmd builds `sandbox inspect`, the same shape as `network inspect`.
func newSandboxInspectCmd(o *globalOpts) *cobra.Command {
	cmd := newInspectCmd[api.Sandbox](o, "sandbox", func(ref string) string { return sandboxPath(ref) })
	cmd.ValidArgsFunction = completeSandboxes(o)
	return cmd
}

// newSandboxRmCmd builds `sandbox rm`; without -f netmgr refuses a sandbox whose netns
// still has processes in it.
func newSandboxRmCmd(o *globalOpts) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [flags] NAME|ID...",
		Aliases: []string{"remove"},
		Short:   "Remove sandboxes",
		Args:    minArgs(1, "NAME|ID..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			return removeEach(o, args, func(ref string) error {
				return c.delete(cmd.Context(), removeSandboxPath(ref, force))
			})
		},
		ValidArgsFunction: completeSandboxes(o),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even if in use")
	return cmd
}

// removeSandboxPath is the DELETE path; force travels as a query, as in docker's API.
func removeSandboxPath(ref string, force bool) string {
	if force {
		return sandboxPath(ref) + "?force=1"
	}
	return sandboxPath(ref)
}

// newSandboxRenameCmd builds `sandbox rename`; netmgr moves the netns pin and files.
func newSandboxRenameCmd(o *globalOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "rename OLD NEW",
		Short: "Rename a sandbox",
		Args:  exactArgs(2, "OLD NEW"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			return c.post(cmd.Context(), sandboxPath(args[0], "rename"), api.SandboxRename{Name: args[1]}, nil)
		},
		ValidArgsFunction: completeFirstSandbox(o, false),
	}
}
