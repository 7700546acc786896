// Package testns runs root integration tests in a private network and mount namespace.
//
// A package's TestMain calls Main, which re-executes the test binary under
// `unshare --net --mount --propagation private` when running as root. Inside, the
// directories berth writes to (/run/netns, /etc/netns, /run/berth, /var/lib/berth) are
// fresh tmpfs mounts and lo is up, so tests can create bridges, veths and named netns
// without touching the machine's own namespace. It owns no berth state and must never
// change the namespace it was started in.
package testns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// envInside marks a test binary re-executed inside the private namespaces.
const envInside = "BERTH_TESTNS"

// Dirs are the directories mounted as tmpfs inside the private namespace, so that named
// netns, per-sandbox files and daemon state never leak to the machine.
var Dirs = []string{"/run/netns", "/etc/netns", "/run/berth", "/var/lib/berth"}

// inside is set by Main once the private namespace is ready.
var inside bool

// Main runs the tests of a package, in a private namespace when possible. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testns.Main(m)) }
//
// As root it re-executes the binary under unshare and returns that run's exit code. As
// another user it runs the tests directly; Require then skips (or fails under CI=true).
func Main(m *testing.M) int {
	if os.Getenv(envInside) == "1" {
		if err := setup(); err != nil {
			fmt.Fprintf(os.Stderr, "testns: %v\n", err)
			return 1
		}
		inside = true
		return m.Run()
	}
	if os.Geteuid() != 0 {
		return m.Run()
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--propagation", "private", os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// If go test kills this process (timeout), do not leave the inner run behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "testns: re-exec under unshare: %v\n", err)
		return 1
	}
}

// setup prepares the private namespace: tmpfs over Dirs and lo up. It runs before any
// test, on whatever thread; every thread of the re-executed process shares the new netns.
func setup() error {
	for _, dir := range Dirs {
		// The directory may have to be created on the real filesystem to serve as a
		// mount point; it stays empty there.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// InPrivateNS reports whether the tests run inside the private namespace set up by Main.
func InPrivateNS() bool { return inside }

// Require skips the test unless it runs inside the private namespace. Under CI=true it
// fails instead, because root integration tests must run in CI.
func Require(t testing.TB) {
	t.Helper()
	if inside {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("root integration tests must run in CI (need root and testns.Main in TestMain)")
	}
	t.Skip("needs root: run as root so testns.Main re-executes the tests in a private namespace")
}
