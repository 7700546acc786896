package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth/api"
)

// Exit codes of a command that could not be run, as shells (and `docker run`) use them.
const (
	exitCannotExec = 126
	exitNotFound   = 127
)

func newExecCmd(o *globalOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec SANDBOX -- CMD [ARG...]",
		Short: "Run a command in a sandbox's network namespace (like ip netns exec)",
		Args:  minArgs(2, "SANDBOX CMD [ARG...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			argv := commandArgs(args[1:])
			if len(argv) == 0 {
				return fmt.Errorf("%q requires a command after SANDBOX", cmd.CommandPath())
			}
			var sb api.Sandbox
			if err := c.get(cmd.Context(), sandboxPath(args[0]), &sb); err != nil {
				return err
			}
			return execIn(sb, argv)
		},
		ValidArgsFunction: completeFirstSandbox(o, true),
	}
	// Everything after SANDBOX belongs to CMD, flags included.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// commandArgs drops the "--" that separates SANDBOX from CMD. Flag parsing stops at
// SANDBOX (so CMD's own flags stay CMD's) and therefore hands that "--" through.
func commandArgs(args []string) []string {
	if len(args) > 0 && args[0] == "--" {
		return args[1:]
	}
	return args
}

// execIn replaces this process with argv running in sb's netns, with sb's generated
// resolv.conf and hosts over /etc in a private mount namespace: what `ip netns exec` does,
// so programs resolve names exactly as they do under iproute2. It returns only on failure.
func execIn(sb api.Sandbox, argv []string) error {
	// Namespaces belong to threads: everything below, execve included, must happen on this
	// one. It is never unlocked because the process either execs or exits.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("exec in sandbox %q: unshare mount namespace: %w", sb.Name, err)
	}
	// Slave, not private: host mounts still show up, but our bind mounts never leak back.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("exec in sandbox %q: make / a slave mount: %w", sb.Name, err)
	}
	if err := bindEtc(filepath.Dir(sb.ResolvConfPath)); err != nil {
		return fmt.Errorf("exec in sandbox %q: %w", sb.Name, err)
	}
	if err := enterNS(sb.NetNSPath, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("exec in sandbox %q: %w", sb.Name, err)
	}
	// Its hostname and domain name, as a container's: a sandbox without a UTS namespace
	// of its own (host mode, an adopted netns) keeps the caller's.
	if sb.UTSPath != "" {
		if err := enterNS(sb.UTSPath, unix.CLONE_NEWUTS); err != nil {
			return fmt.Errorf("exec in sandbox %q: %w", sb.Name, err)
		}
	}
	remountSys(sb.Name)
	path, err := exec.LookPath(argv[0])
	if err != nil {
		var ee *exec.Error // its text repeats the name: keep only the reason
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return &exitError{code: exitNotFound, err: fmt.Errorf("exec %q: %w", argv[0], err)}
	}
	err = syscall.Exec(path, argv, os.Environ())
	return &exitError{code: exitCannotExec, err: fmt.Errorf("exec %q: %w", path, err)}
}

// bindEtc bind-mounts each file of dir (/etc/netns/NAME) over the file of the same name in
// /etc, as iproute2 does. A missing dir means the sandbox has no generated files.
func bindEtc(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		// MS_BIND follows a symlinked target (resolv.conf often is one), which is what we want.
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", src, dst, err)
		}
	}
	return nil
}

// enterNS moves this thread into the namespace of type nstype (CLONE_NEWNET, CLONE_NEWUTS)
// pinned at path; the kernel refuses a file of another type. It is not nsutil.Do, which
// runs a function on another thread and comes back: the program exec'd must start on this
// very thread, in its mount namespace, and there is nothing to come back to.
func enterNS(path string, nstype int) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, nstype); err != nil {
		return fmt.Errorf("enter namespace %s: %w", path, err)
	}
	return nil
}

// remountSys mounts a sysfs of the new netns on /sys, so /sys/class/net shows the sandbox's
// interfaces. Failures are ignored, as iproute2 ignores them: most commands never look.
func remountSys(name string) {
	var flags uintptr
	var st unix.Statfs_t
	if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
		flags = unix.MS_RDONLY
	}
	if unix.Unmount("/sys", unix.MNT_DETACH) != nil {
		return
	}
	_ = unix.Mount(name, "/sys", "sysfs", flags, "")
}

func newRunCmd(o *globalOpts) *cobra.Command {
	var (
		req api.SandboxCreate
		rm  bool
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARG...]",
		Short: "Create a sandbox and run a command in it",
		Args:  minArgs(1, "CMD [ARG...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := createSandbox(cmd, o, req)
			if err != nil {
				return err
			}
			code, runErr := runChild(o.host, resp.Name, args)
			if rm {
				c, _ := o.client() // already parsed by createSandbox
				if err := c.delete(cmd.Context(), removeSandboxPath(resp.ID, true)); err != nil {
					fmt.Fprintln(o.stderr, err)
				}
			}
			if runErr != nil {
				return runErr
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	addSandboxFlags(cmd.Flags(), &req)
	registerNetworkFlag(cmd, o)
	cmd.Flags().BoolVar(&rm, "rm", false, "remove the sandbox when the command exits")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// runChild runs `berth exec NAME -- argv...` as a child with our stdio and returns its exit
// code. A child is needed (rather than execIn here) so that --rm can clean up afterwards.
func runChild(host, name string, argv []string) (int, error) {
	args := append([]string{"--host", host, "exec", name, "--"}, argv...)
	child := exec.Command("/proc/self/exe", args...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Forward termination signals so the child decides when to end and --rm still runs.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		return 0, fmt.Errorf("run in sandbox %q: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = child.Process.Signal(s)
		case err := <-done:
			return exitCode(err)
		}
	}
}

// exitCode maps a child's Wait result to a shell-style exit code (128+N for signal N).
func exitCode(err error) (int, error) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, err // nil, or the child could not be waited for
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ee.ExitCode(), nil
}
