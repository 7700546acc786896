package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"berth/api"
)

// Shell completion. `berth completion bash|zsh|fish` is cobra's own command (cobra adds
// it to the root, with powershell too); the scripts it prints call `berth __complete ARGS`
// at each TAB, and the functions here answer the operands that name daemon objects:
// networks and sandboxes, asked from the daemon the command line names (--host,
// BERTH_HOST). The shell scripts throw away __complete's stderr; still, nothing here
// prints: a daemon that is down or slow gives no candidates within completionTimeout, with
// ShellCompDirectiveError as docker 28's completion gives then (the scripts then offer
// nothing, file names neither).

// completionTimeout bounds one question to the daemon: the shell waits on it at each TAB.
// A refused or missing socket fails at once; this is for a daemon that hangs.
const completionTimeout = time.Second

// noFiles is the directive of every answer here: daemon objects, never file names.
const noFiles = cobra.ShellCompDirectiveNoFileComp

// answer is names with noFiles, or, when the daemon could not be asked (nil), nothing with
// ShellCompDirectiveError, as docker's completion answers then.
func answer(names []cobra.Completion) ([]cobra.Completion, cobra.ShellCompDirective) {
	if names == nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return names, noFiles
}

// completeNetworks completes every operand with network names (network inspect and rm),
// leaving out those already given.
func completeNetworks(o *globalOpts) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return answer(networkNames(cmd, o, toComplete, args))
	}
}

// completeSandboxes completes every operand with sandbox names (sandbox inspect and rm),
// leaving out those already given.
func completeSandboxes(o *globalOpts) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return answer(sandboxNames(cmd, o, toComplete, args))
	}
}

// completeFirstSandbox completes the first operand with sandbox names (exec, sandbox port,
// sandbox rename); what follows is not berth's to complete: exec's command is left to the
// shell's own completion, the others get nothing.
func completeFirstSandbox(o *globalOpts, thenShell bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch {
		case len(args) == 0:
			return answer(sandboxNames(cmd, o, toComplete, nil))
		case thenShell:
			return nil, cobra.ShellCompDirectiveDefault
		}
		return nil, noFiles
	}
}

// completeConnect completes network connect's NETWORK SANDBOX; for disconnect
// (attached), the sandboxes are those on NETWORK.
func completeConnect(o *globalOpts, attached bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch {
		case len(args) == 0:
			return answer(networkNames(cmd, o, toComplete, nil))
		case len(args) == 1 && attached:
			return answer(attachedNames(cmd, o, args[0], toComplete))
		case len(args) == 1:
			return answer(sandboxNames(cmd, o, toComplete, nil))
		}
		return nil, noFiles
	}
}

// completeNetworkFlag completes --network of sandbox create and run: network names and
// the modes none and host; once container: is typed, container:NAME with sandbox names.
// container: itself is not offered: a shell would put a space after it.
func completeNetworkFlag(o *globalOpts) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		const shared = "container:"
		if name, ok := strings.CutPrefix(toComplete, shared); ok {
			names := sandboxNames(cmd, o, name, nil)
			for i, n := range names {
				names[i] = shared + n
			}
			return answer(names)
		}
		out := networkNames(cmd, o, toComplete, nil)
		if out == nil {
			return answer(nil)
		}
		for _, mode := range []string{"none", "host"} {
			if strings.HasPrefix(mode, toComplete) && !slices.Contains(out, mode) {
				out = append(out, mode)
			}
		}
		return out, noFiles
	}
}

// registerNetworkFlag adds completeNetworkFlag to cmd's --network.
func registerNetworkFlag(cmd *cobra.Command, o *globalOpts) {
	// The only error is a flag that does not exist: a programming error the tests catch.
	if err := cmd.RegisterFlagCompletionFunc("network", completeNetworkFlag(o)); err != nil {
		panic(err)
	}
}

// networkNames asks the daemon for the names of its networks that begin with prefix,
// minus skip, sorted; nil (not empty) if the daemon does not answer.
func networkNames(cmd *cobra.Command, o *globalOpts, prefix string, skip []string) []cobra.Completion {
	var nets []api.Network
	if !ask(cmd, o, "/networks", &nets) {
		return nil
	}
	names := make([]string, 0, len(nets))
	for _, n := range nets {
		names = append(names, n.Name)
	}
	return matching(names, prefix, skip)
}

// sandboxNames is networkNames for sandboxes.
func sandboxNames(cmd *cobra.Command, o *globalOpts, prefix string, skip []string) []cobra.Completion {
	var sbs []api.Sandbox
	if !ask(cmd, o, "/sandboxes", &sbs) {
		return nil
	}
	names := make([]string, 0, len(sbs))
	for _, sb := range sbs {
		names = append(names, sb.Name)
	}
	return matching(names, prefix, skip)
}

// attachedNames is sandboxNames for the sandboxes on network ref.
func attachedNames(cmd *cobra.Command, o *globalOpts, ref, prefix string) []cobra.Completion {
	var nw api.Network
	if !ask(cmd, o, networkPath(ref), &nw) {
		return nil
	}
	names := make([]string, 0, len(nw.Containers))
	for _, c := range nw.Containers {
		names = append(names, c.Name)
	}
	return matching(names, prefix, nil)
}

// ask GETs path into out within completionTimeout; false on any failure, which
// completion keeps to itself.
func ask(cmd *cobra.Command, o *globalOpts, path string, out any) bool {
	c, err := o.client()
	if err != nil {
		return false
	}
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, completionTimeout)
	defer cancel()
	return c.get(ctx, path, out) == nil
}

// matching returns the names that begin with prefix and are not in skip, sorted; never
// nil.
func matching(names []string, prefix string, skip []string) []cobra.Completion {
	out := []cobra.Completion{}
	for _, n := range names {
		if n != "" && strings.HasPrefix(n, prefix) && !slices.Contains(skip, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
