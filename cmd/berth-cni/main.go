// Command berth-cni is a CNI plugin (spec 1.0.0 and 1.1.0) that attaches a container's
// network namespace to a berth network through the berth daemon: ADD adopts CNI_NETNS as a
// berth sandbox (veth, address, routes, and the embedded DNS server on 127.0.0.11, or
// fd62:6572:7468::11 for an IPv6-only one, so the container resolves the other sandboxes
// of the network by name and alias), DEL removes that sandbox and leaves the namespace to
// its owner.
//
// The plugin keeps no state of its own: the daemon's sandboxes carry labels naming the CNI
// attachment (container ID, interface, network), and every command finds its sandbox by
// them. It makes no kernel change itself; CHECK only reads the namespace.
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"berth/api"
	"berth/api/client"
)

// timeout bounds one plugin command. ADD waits for the daemon to wire the namespace and
// start its DNS server, which takes well under a second; a daemon that does not answer in a
// minute is stuck, and the runtime should get an error it can retry on.
const timeout = time.Minute

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		GC:     cmdGC,
		Status: cmdStatus,
	}, version.PluginSupports("1.0.0", "1.1.0"), "berth-cni: attaches a network namespace to a berth network through the berth daemon")
}

// open parses the configuration and dials nothing yet.
func open(args *skel.CmdArgs) (*netConf, *client.Client, error) {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(conf.Daemon)
	if err != nil {
		return nil, nil, err
	}
	return conf, c, nil
}

// daemonError words a failed API call for the runtime: a daemon that cannot be reached is
// "try again later" (code 11), since it is normally a restart in progress; anything else is
// the daemon's one-line message after what was being done.
func daemonError(err error, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...) + ": " + err.Error()
	var te *types.Error
	switch {
	case client.IsUnreachable(err):
		return types.NewError(types.ErrTryAgainLater, msg, "")
	case errors.As(err, &te):
		return err
	}
	return types.NewError(types.ErrInternal, msg, "")
}

// findAttachments lists the sandboxes carrying the labels of the attachment (container,
// ifname) on the CNI network conf.Name. Normally one or none.
func findAttachments(ctx context.Context, c *client.Client, conf *netConf, args *skel.CmdArgs) ([]api.Sandbox, error) {
	all, err := c.Sandboxes(ctx, nil)
	if err != nil {
		return nil, daemonError(err, "list sandboxes")
	}
	want := labels(conf, args)
	var out []api.Sandbox
	for _, sb := range all {
		if sb.Labels[labelContainer] == want[labelContainer] && sb.Labels[labelIfName] == want[labelIfName] &&
			sb.Labels[labelNetwork] == want[labelNetwork] {
			out = append(out, sb)
		}
	}
	return out, nil
}
