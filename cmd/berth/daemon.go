package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// daemonExe is the daemon's executable (cmd/berth-daemon), looked for beside this one,
// then on PATH.
const daemonExe = "berth-daemon"

// newDaemonCmd is `berth daemon`: it executes berth-daemon with the same arguments, so
// the client commands link none of the daemon's packages (see cmd/berth-daemon).
func newDaemonCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "daemon [flags]",
		Short:              "Run the berth daemon (as root; executes " + daemonExe + ")",
		DisableFlagParsing: true, // every flag, --help included, is berth-daemon's
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findDaemon()
			if err != nil {
				return err
			}
			return syscall.Exec(path, append([]string{path}, args...), os.Environ())
		},
	}
}

// findDaemon returns berth-daemon's path: beside this executable (make build and make
// install put them together), else on PATH.
func findDaemon() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), daemonExe)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(daemonExe)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("%s not found beside berth or on PATH (make build puts it in bin/)", daemonExe)
		}
		return "", err
	}
	return p, nil
}
