package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
)

// cmdCheck verifies the attachment: its sandbox exists in the daemon, adopted CNI_NETNS,
// and the namespace has CNI_IFNAME up with the sandbox's MAC and addresses; and, when the
// runtime passes a prevResult, that it lists those addresses.
func cmdCheck(args *skel.CmdArgs) error {
	conf, c, err := open(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	found, err := findAttachments(ctx, c, conf, args)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf(
			"container %s has no berth sandbox on network %s (interface %s)", args.ContainerID, conf.Name, args.IfName), "")
	}
	sb := &found[0]
	if !sameNetNS(sb.NetNSAdopted, args.Netns) {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf(
			"sandbox %s adopted netns %s, not CNI_NETNS %s", sb.Name, sb.NetNSAdopted, args.Netns), "")
	}
	want, err := attachmentResult(ctx, c, conf, sb, args.Netns)
	if err != nil {
		return err
	}
	if err := checkPrevResult(conf, want); err != nil {
		return err
	}
	if err := checkInterface(args.Netns, args.IfName, want); err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("sandbox %s: %v", sb.Name, err), "")
	}
	return nil
}

// checkPrevResult fails when the runtime's prevResult lacks an address of want.
func checkPrevResult(conf *netConf, want *types100.Result) error {
	if conf.RawPrevResult == nil {
		return nil
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("parse prevResult: %v", err), "")
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("convert prevResult: %v", err), "")
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(prev.IPs, func(p *types100.IPConfig) bool { return p.Address.String() == ip.Address.String() }) {
			return types.NewError(types.ErrInternal, fmt.Sprintf("prevResult lacks the sandbox's address %s", ip.Address.String()), "")
		}
	}
	return nil
}

// checkInterface looks into the namespace at nsPath, without entering it, for interface
// name with want's MAC and addresses, up.
func checkInterface(nsPath, name string, want *types100.Result) error {
	ns, err := nsutil.Open(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in netns %s: %w", nsPath, err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("interface %s in netns %s: %w", name, nsPath, err)
	}
	if mac := want.Interfaces[0].Mac; mac != "" && !strings.EqualFold(link.Attrs().HardwareAddr.String(), mac) {
		return fmt.Errorf("interface %s has MAC %s, want %s", name, link.Attrs().HardwareAddr, mac)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("interface %s is down", name)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IPNet.String() == ip.Address.String() }) {
			return fmt.Errorf("interface %s lacks address %s", name, ip.Address.String())
		}
	}
	return nil
}

// cmdStatus tells the runtime whether ADD can work now: the daemon answers and the network
// exists. Otherwise it is error 50, "plugin not available".
func cmdStatus(args *skel.CmdArgs) error {
	conf, c, err := open(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	if _, err := c.Network(ctx, conf.Network); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("network %s: %v", conf.Network, err), "")
	}
	return nil
}
