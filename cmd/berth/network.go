package main

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"berth/api"
	"berth/internal/filters"
)

// newNetworkCmd groups the network commands; each is a thin client of one API call.
func newNetworkCmd(o *globalOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage networks",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		newNetworkCreateCmd(o),
		newNetworkLsCmd(o),
		newNetworkInspectCmd(o),
		newNetworkRmCmd(o),
		newNetworkPruneCmd(o),
		newNetworkConnectCmd(o),
		newNetworkDisconnectCmd(o),
	)
	return cmd
}

// networkPath is /networks/REF[/SUFFIX] with REF escaped, since a ref is user input.
func networkPath(ref string, suffix ...string) string {
	p := "/networks/" + url.PathEscape(ref)
	for _, s := range suffix {
		p += "/" + s
	}
	return p
}

// newNetworkCreateCmd builds `network create`. Only KEY=VALUE splitting happens here (the
// API takes maps); every other check is netmgr's, so CLI and API refuse the same things.
func newNetworkCreateCmd(o *globalOpts) *cobra.Command {
	var (
		req               api.NetworkCreate
		opts, labels, aux []string
		ipv4              bool
	)
	cmd := &cobra.Command{
		Use:   "create [flags] NAME",
		Short: "Create a bridge network and print its ID",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			var err error
			if req.Options, err = parseKeyValues("opt", opts); err != nil {
				return err
			}
			if req.Labels, err = parseKeyValues("label", labels); err != nil {
				return err
			}
			if req.AuxAddresses, err = parseKeyValues("aux-address", aux); err != nil {
				return err
			}
			if cmd.Flags().Changed("ipv4") {
				req.IPv4 = &ipv4 // unset means the daemon's default (IPv4 on), as in Docker
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var resp api.IDResponse
			if err := c.post(cmd.Context(), "/networks", req, &resp); err != nil {
				return err
			}
			fmt.Fprintln(o.stdout, resp.ID)
			return nil
		},
	}
	f := cmd.Flags()
	// The default is sent explicitly so the request says what the user got; netmgr
	// refuses any other driver with a one-line error.
	f.StringVarP(&req.Driver, "driver", "d", "bridge", "driver: bridge, overlay (needs the daemon's --cluster-store), macvlan or ipvlan (-o parent=IFACE)")
	f.StringArrayVar(&req.Subnets, "subnet", nil, "subnet in CIDR form (repeat for IPv4 and IPv6)")
	f.StringArrayVar(&req.Gateways, "gateway", nil, "gateway of a subnet (repeatable)")
	f.StringArrayVar(&req.IPRanges, "ip-range", nil, "allocate dynamic addresses from this sub-range of the subnet containing it (repeatable)")
	f.StringArrayVar(&aux, "aux-address", nil, "NAME=IP: reserve IP of a subnet, never handed out (repeatable)")
	f.BoolVar(&req.Internal, "internal", false, "no default route, no outside access")
	f.BoolVar(&ipv4, "ipv4", true, "enable IPv4 (--ipv4=false with --ipv6: an IPv6-only network)")
	f.BoolVar(&req.IPv6, "ipv6", false, "enable IPv6 (dual stack, or IPv6-only with --ipv4=false)")
	f.BoolVar(&req.Attachable, "attachable", false, "accepted and shown, as Docker outside swarm")
	f.BoolVar(&req.ConfigOnly, "config-only", false, "create a configuration network for --config-from: no bridge, no sandboxes")
	f.StringVar(&req.ConfigFrom, "config-from", "", "take subnets, options and labels from this configuration network")
	f.StringArrayVarP(&opts, "opt", "o", nil, "driver option KEY=VALUE (repeatable)")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	return cmd
}

// newNetworkLsCmd builds `network ls`; the daemon already orders networks by name.
func newNetworkLsCmd(o *globalOpts) *cobra.Command {
	var lf listFormat
	var filter []string
	cmd := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lt, err := networkLister.compile(lf, o.stderr)
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
			nets, err := c.Networks(cmd.Context(), args)
			if err != nil {
				return err
			}
			return networkLister.write(o.stdout, lt, nets, !lf.noTrunc)
		},
	}
	lf.addFlags(cmd.Flags(), "network", networkFields)
	cmd.Flags().StringArrayVarP(&filter, "filter", "f", nil, "KEY=VALUE: name, id, label, driver, scope, type=custom|builtin, dangling=true|false (repeatable)")
	return cmd
}

// newNetworkInspectCmd builds `network inspect`: one GET per ref, so each can fail alone.
func newNetworkInspectCmd(o *globalOpts) *cobra.Command {
	cmd := newInspectCmd[api.Network](o, "network", func(ref string) string { return networkPath(ref) })
	cmd.ValidArgsFunction = completeNetworks(o)
	return cmd
}

// newInspectCmd builds the inspect command of a noun whose objects live at path(ref).
func newInspectCmd[T any](o *globalOpts, noun string, path func(ref string) string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [flags] NAME|ID...",
		Short: "Show " + noun + "s as JSON",
		Args:  minArgs(1, "NAME|ID..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			it, err := compileInspect(format)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			return inspectEach(o, it, args, func(ref string) (inspected[T], error) {
				var got inspected[T]
				if err := c.get(cmd.Context(), path(ref), &got.raw); err != nil {
					return got, err
				}
				if err := json.Unmarshal(got.raw, &got.v); err != nil {
					return got, fmt.Errorf("inspect %s %q: %w", noun, ref, err)
				}
				return got, nil
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "json, or a Go template over each "+noun+
		"'s inspect JSON, by Go or JSON field name ({{.Id}}, {{range .IPAM.Config}}{{.Subnet}}{{end}})")
	return cmd
}

// inspectEach prints what get finds for each ref: one JSON array (possibly "[]"), or the
// format template once per item. Like docker, each failure gets its own stderr line and the
// command exits 1 afterwards; an unreachable daemon stops it at once.
func inspectEach[T any](o *globalOpts, it *inspectTemplate, refs []string, get func(string) (inspected[T], error)) error {
	found := []inspected[T]{}
	failed := 0
	for _, ref := range refs {
		v, err := get(ref)
		if isUnreachable(err) {
			return err
		}
		if err != nil {
			fmt.Fprintln(o.stderr, err)
			failed++
			continue
		}
		found = append(found, v)
	}
	bad, err := printInspect(o.stdout, o.stderr, it, found)
	if err != nil {
		return err
	}
	if failed+bad > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// newNetworkRmCmd builds `network rm`: the daemon resolves each ref and refuses networks
// in use or predefined.
func newNetworkRmCmd(o *globalOpts) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME|ID...",
		Aliases: []string{"remove"},
		Short:   "Remove networks",
		Args:    minArgs(1, "NAME|ID..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			return removeEach(o, args, func(ref string) error {
				return c.delete(cmd.Context(), networkPath(ref))
			})
		},
		ValidArgsFunction: completeNetworks(o),
	}
}

// removeEach removes each ref, printing it on success and the error on failure, like
// `docker rm`; it goes on after a failure and exits 1 at the end.
func removeEach(o *globalOpts, refs []string, rm func(string) error) error {
	failed := 0
	for _, ref := range refs {
		err := rm(ref)
		if isUnreachable(err) {
			return err
		}
		if err != nil {
			fmt.Fprintln(o.stderr, err)
			failed++
			continue
		}
		fmt.Fprintln(o.stdout, ref)
	}
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func newNetworkPruneCmd(o *globalOpts) *cobra.Command {
	var filter []string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove all unused user-defined networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			args, err := filters.Parse(filter)
			if err != nil {
				return err
			}
			deleted, err := c.PruneNetworks(cmd.Context(), args)
			if err != nil {
				return err
			}
			for _, name := range deleted {
				fmt.Fprintln(o.stdout, name)
			}
			return nil
		},
	}
	// Accepted for docker muscle memory; berth never asks for confirmation.
	cmd.Flags().BoolP("force", "f", false, "do not prompt (berth never prompts)")
	// No -f: it is --force here, as in docker.
	cmd.Flags().StringArrayVar(&filter, "filter", nil, "KEY=VALUE: until=24h|TIME, label=KEY[=VALUE], label!=KEY[=VALUE] (repeatable)")
	return cmd
}

// newNetworkConnectCmd builds `network connect`; the operand order (NETWORK SANDBOX) is
// docker's, the network goes in the path and the sandbox in the body.
func newNetworkConnectCmd(o *globalOpts) *cobra.Command {
	var req api.NetworkConnect
	cmd := &cobra.Command{
		Use:   "connect [flags] NETWORK SANDBOX",
		Short: "Connect a sandbox to a network",
		Args:  exactArgs(2, "NETWORK SANDBOX"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Sandbox = args[1]
			c, err := o.client()
			if err != nil {
				return err
			}
			return c.post(cmd.Context(), networkPath(args[0], "connect"), req, nil)
		},
		ValidArgsFunction: completeConnect(o, false),
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.Aliases, "alias", nil, "network-scoped alias (repeatable)")
	f.StringVar(&req.IPv4, "ip", "", "IPv4 address")
	f.StringVar(&req.IPv6, "ip6", "", "IPv6 address")
	f.StringArrayVar(&req.Links, "link", nil, "link to another sandbox, NAME[:ALIAS] (repeatable)")
	return cmd
}

// newNetworkDisconnectCmd builds `network disconnect`; -f lets netmgr drop the endpoint
// record even when its host veth cannot be deleted.
func newNetworkDisconnectCmd(o *globalOpts) *cobra.Command {
	var req api.NetworkDisconnect
	cmd := &cobra.Command{
		Use:   "disconnect [flags] NETWORK SANDBOX",
		Short: "Disconnect a sandbox from a network",
		Args:  exactArgs(2, "NETWORK SANDBOX"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Sandbox = args[1]
			c, err := o.client()
			if err != nil {
				return err
			}
			return c.post(cmd.Context(), networkPath(args[0], "disconnect"), req, nil)
		},
		ValidArgsFunction: completeConnect(o, true),
	}
	cmd.Flags().BoolVarP(&req.Force, "force", "f", false, "force the disconnect")
	return cmd
}
