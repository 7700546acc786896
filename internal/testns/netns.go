package testns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// NewNetNS creates a netns pinned at /run/netns/<name> and removes it when the test ends.
// It is a test rig only (lo stays down); berth's own code uses netmgr/kernel.
func NewNetNS(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join("/run/netns", name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	f.Close()
	t.Cleanup(func() {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", path, err)
		}
		if err := os.Remove(path); err != nil {
			t.Errorf("remove %s: %v", path, err)
		}
	})
	errc := make(chan error, 1)
	go func() {
		// The thread never leaves the new netns, so it is not unlocked: it exits with
		// this goroutine. The main thread cannot exit (the runtime parks it instead), so
		// while this goroutine holds it, the work moves to a goroutine on another thread.
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			errc <- pinNewNetNS(path)
			return
		}
		inner := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			inner <- pinNewNetNS(path)
		}()
		err := <-inner
		runtime.UnlockOSThread() // the main thread never left its netns
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("new netns %s: %v", path, err)
	}
	return path
}

// pinNewNetNS moves the calling (locked) thread into a new netns and pins it at path.
// It is not nsutil.Do, for the reason netmgr/kernel's CreateNetNS is not (which this
// package cannot call: the kernel's tests import it): unshare(2) makes the namespace the
// thread moves into, and the thread ends there instead of being switched back.
func pinNewNetNS(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	return unix.Mount(src, path, "", unix.MS_BIND, "")
}
