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
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"berth/api"
	apiclient "berth/api/client"
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
	host string // unix://PATH or tcp://HOST:PORT of the daemon
	// tlsverify, tlscacert, tlscert, tlskey: mutual TLS with a tcp:// daemon, as docker's
	// flags; the files default to BERTH_CERT_PATH/{ca,cert,key}.pem.
	tlsVerify              bool
	tlsCA, tlsCert, tlsKey string
	stdout                 io.Writer
	stderr                 io.Writer
}

// client returns an API client for the daemon chosen by --host / BERTH_HOST.
func (o *globalOpts) client() (*client, error) {
	if !strings.HasPrefix(o.host, "tcp://") {
		return newClient(o.host)
	}
	files := [3]string{o.tlsCA, o.tlsCert, o.tlsKey}
	if dir := os.Getenv(apiclient.EnvCertPath); dir != "" {
		for i, name := range []string{"ca.pem", "cert.pem", "key.pem"} {
			if files[i] == "" {
				files[i] = filepath.Join(dir, name)
			}
		}
	}
	if files[0] == "" || files[1] == "" || files[2] == "" {
		return nil, fmt.Errorf("invalid host %q: tcp:// needs mutual TLS: --tlscacert, --tlscert and --tlskey (or %s)", o.host, apiclient.EnvCertPath)
	}
	tc, err := apiclient.LoadTLS(files[0], files[1], files[2])
	if err != nil {
		return nil, err
	}
	c, err := apiclient.NewTLS(o.host, tc)
	if err != nil {
		return nil, err
	}
	return &client{c}, nil
}

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
	pf := root.PersistentFlags()
	pf.StringVarP(&o.host, "host", "H", defaultHost(),
		"daemon socket, unix://PATH or tcp://HOST:PORT (env BERTH_HOST)")
	// tcp:// is always mutual TLS (the daemon accepts nothing else); --tlsverify is
	// accepted for docker's command lines.
	pf.BoolVar(&o.tlsVerify, "tlsverify", false, "use TLS and verify the daemon (always so for tcp://)")
	pf.StringVar(&o.tlsCA, "tlscacert", "", "CA certificate the daemon's certificate is signed by (default $BERTH_CERT_PATH/ca.pem)")
	pf.StringVar(&o.tlsCert, "tlscert", "", "this client's certificate (default $BERTH_CERT_PATH/cert.pem)")
	pf.StringVar(&o.tlsKey, "tlskey", "", "this client's key (default $BERTH_CERT_PATH/key.pem)")
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
