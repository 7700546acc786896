package main

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"berth/api"
	"berth/api/client"
	"berth/internal/nsutil"
)

// cmdAdd adopts CNI_NETNS as a berth sandbox on the configured network and prints the
// result. An ADD for an attachment that already exists in the same netns prints that
// attachment's result again and changes nothing.
func cmdAdd(args *skel.CmdArgs) error {
	conf, c, err := open(args)
	if err != nil {
		return err
	}
	if args.IfName != ifName {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf(
			"CNI_IFNAME %q: berth names the interface of a one-network sandbox %s itself; configure the runtime to use %s", args.IfName, ifName, ifName), "")
	}
	if sameNetNS(args.Netns, "/proc/self/ns/net") {
		// skel would refuse this too, but only after ADD had wired the namespace.
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %s is the plugin's own network namespace", args.Netns), "")
	}
	cargs, err := parseArgs(args.Args)
	if err != nil {
		return err
	}
	name, err := sandboxName(string(cargs.K8S_POD_NAME), args.ContainerID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	existing, err := findAttachments(ctx, c, conf, args)
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		sb := &existing[0]
		if !sameNetNS(sb.NetNSAdopted, args.Netns) {
			return types.NewError(types.ErrInternal, fmt.Sprintf(
				"container %s is already attached to network %s as sandbox %s in netns %s, not %s: DEL it first",
				args.ContainerID, conf.Name, sb.Name, sb.NetNSAdopted, args.Netns), "")
		}
		res, err := attachmentResult(ctx, c, conf, sb, args.Netns)
		if err != nil {
			return err
		}
		return types.PrintResult(res, conf.CNIVersion)
	}

	created, err := c.CreateSandbox(ctx, api.SandboxCreate{
		Name:     name,
		Networks: []string{conf.Network},
		Aliases:  conf.aliases(),
		NetNS:    args.Netns,
		Labels:   labels(conf, args),
	})
	if err != nil {
		return daemonError(err, "create sandbox %s for container %s on network %s", name, args.ContainerID, conf.Network)
	}
	res, err := createdResult(ctx, c, conf, args, created)
	if err != nil {
		// The runtime will not DEL an attachment whose ADD failed: undo it here.
		if rmErr := c.RemoveSandbox(ctx, created.ID, true); rmErr != nil && !client.IsNotFound(rmErr) {
			return fmt.Errorf("%w (and removing sandbox %s: %v)", err, name, rmErr)
		}
		return err
	}
	return types.PrintResult(res, conf.CNIVersion)
}

// createdResult reads the sandbox ADD just made back and checks the daemon named the
// interface as asked.
func createdResult(ctx context.Context, c *client.Client, conf *netConf, args *skel.CmdArgs, cr *api.IDResponse) (*types100.Result, error) {
	sb, err := c.Sandbox(ctx, cr.ID)
	if err != nil {
		return nil, daemonError(err, "inspect sandbox %s", cr.Name)
	}
	res, err := attachmentResult(ctx, c, conf, sb, args.Netns)
	if err != nil {
		return nil, err
	}
	if got := res.Interfaces[0].Name; got != args.IfName {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf(
			"sandbox %s: berth named the interface %s, not CNI_IFNAME %s (does the netns already have an interface?)", sb.Name, got, args.IfName), "")
	}
	return res, nil
}

// attachmentResult is the CNI result of sandbox sb's endpoint on the configured network.
func attachmentResult(ctx context.Context, c *client.Client, conf *netConf, sb *api.Sandbox, netns string) (*types100.Result, error) {
	nw, err := c.Network(ctx, conf.Network)
	if err != nil {
		return nil, daemonError(err, "inspect network %s", conf.Network)
	}
	res, err := buildResult(netns, sb, nw)
	if err != nil {
		return nil, types.NewError(types.ErrInternal, err.Error(), "")
	}
	return res, nil
}

// sameNetNS reports whether two paths name the same network namespace: equal strings, or
// the same nsfs inode (a /proc/PID/ns/net path and a bind mount of it).
func sameNetNS(a, b string) bool {
	same, _ := nsutil.Same(a, b)
	return a == b || same
}
