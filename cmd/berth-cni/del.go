package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"

	"berth/api/client"
)

// cmdDel removes the attachment's sandbox (force: the container's processes are still in
// the netns, which berth leaves alone). No such sandbox, or one removed meanwhile, is
// success. A daemon that cannot be reached is an error (code 11), not success: the sandbox
// would stay registered, its name and address held, with nothing left to remove it.
func cmdDel(args *skel.CmdArgs) error {
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
	var errs []error
	for _, sb := range found {
		if err := c.RemoveSandbox(ctx, sb.ID, true); err != nil && !client.IsNotFound(err) {
			errs = append(errs, daemonError(err, "remove sandbox %s of container %s", sb.Name, args.ContainerID))
		}
	}
	return firstError(errs)
}

// cmdGC removes the sandboxes berth-cni made on this CNI network whose (container ID,
// ifname) is not among cni.dev/valid-attachments. Sandboxes made any other way carry no
// CNI labels and are never touched.
func cmdGC(args *skel.CmdArgs) error {
	conf, c, err := open(args)
	if err != nil {
		return err
	}
	valid := map[[2]string]bool{}
	for _, a := range conf.ValidAttachments {
		valid[[2]string{a.ContainerID, a.IfName}] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	all, err := c.Sandboxes(ctx, nil)
	if err != nil {
		return daemonError(err, "list sandboxes")
	}
	var errs []error
	for _, sb := range all {
		id, ok := sb.Labels[labelContainer]
		if !ok || sb.Labels[labelNetwork] != conf.Name || valid[[2]string{id, sb.Labels[labelIfName]}] {
			continue
		}
		if err := c.RemoveSandbox(ctx, sb.ID, true); err != nil && !client.IsNotFound(err) {
			errs = append(errs, daemonError(err, "gc: remove sandbox %s of container %s", sb.Name, id))
		}
	}
	return firstError(errs)
}

// firstError returns the first error (a CNI error carries one code and message), noting
// how many more there were.
func firstError(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more errors: %v)", errs[0], len(errs)-1, errors.Join(errs[1:]...))
}
