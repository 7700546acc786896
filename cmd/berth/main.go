// Command berth is the client of the berth daemon: every subcommand talks JSON over HTTP
// to the daemon's unix socket, and `berth daemon` executes the daemon itself
// (cmd/berth-daemon, package berth/daemon). This package owns nothing but commands, flags,
// the client and output formats.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"berth/api"
)

// exitError makes main exit with code. err, if non-nil, is printed first; nil means the
// command already said what went wrong (inspect of several refs, a child's own exit code).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func main() {
	root := newRootCmd(os.Stdout, os.Stderr)
	os.Exit(run(root, os.Stderr))
}

// run executes root and turns its error into the one stderr line and exit code of the CLI
// contract.
func run(root *cobra.Command, stderr io.Writer) int {
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, err)
	return 1
}

// globalOpts are the root's persistent flags, shared by every client command.
type globalOpts struct {
	host   string // unix://PATH of the daemon
	stdout io.Writer
	stderr io.Writer
}

// client returns an API client for the daemon chosen by --host / BERTH_HOST.
func (o *globalOpts) client() (*client, error) { return newClient(o.host) }

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &globalOpts{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "berth",
		Short: "Docker-style bridge networking for Linux network namespaces",
		// Errors are printed once, by run, as one line; usage text would bury them.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&o.host, "host", defaultHost(),
		"daemon socket, unix://PATH (env BERTH_HOST)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(
		newDaemonCmd(),
		newNetworkCmd(o),
		newSandboxCmd(o),
		newSandboxLsCmd(o, "ps"),
		newExecCmd(o),
		newRunCmd(o),
		newDNSCmd(o),
		newEventsCmd(o),
	)
	return root
}

// defaultHost is BERTH_HOST if set, else the daemon's default socket.
func defaultHost() string {
	if h := os.Getenv("BERTH_HOST"); h != "" {
		return h
	}
	return "unix://" + api.DefaultSocket
}

// exactArgs is cobra.ExactArgs with a message that shows the expected operands.
func exactArgs(n int, operands string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%q requires exactly %d argument(s): %s", cmd.CommandPath(), n, operands)
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with a message that shows the expected operands.
func minArgs(n int, operands string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%q requires at least %d argument(s): %s", cmd.CommandPath(), n, operands)
		}
		return nil
	}
}
