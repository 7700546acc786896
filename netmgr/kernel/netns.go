package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"berth/internal/nsutil"
)

// maxUnmounts bounds DeleteNetNS's unmount loop: a path pinned several times (by hand,
// or by a crash between two pins) has one mount per pin.
const maxUnmounts = 8

// CreateNetNS makes a new netns with lo up and pins it at path, as `ip netns add` does,
// or moves a pooled one there (StartNetNSPool). A path that already holds a netns is left
// as it is.
func (k *Linux) CreateNetNS(path string) error {
	if k.NetNSExists(path) {
		return nil
	}
	if fd := k.pool.take(); fd >= 0 {
		err := pinFd(fd, path)
		unix.Close(fd)
		if err == nil {
			k.log.Debug("netns created", "netns", path, "pooled", true)
			return nil
		}
		k.log.Warn("netns pool", "err", err)
	}
	if err := createNetNS(path); err != nil {
		return err
	}
	k.log.Debug("netns created", "netns", path)
	return nil
}

func createNetNS(path string) error {
	created, err := prepareNetNSFile(path)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	if err := onSpareThread(func() error { _, err := newNetNSLocked(path); return err }); err != nil {
		unix.Unmount(path, unix.MNT_DETACH) // no mount (EINVAL) is fine here
		if created {
			os.Remove(path)
		}
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	return nil
}

// onSpareThread runs fn on a fresh goroutine locked to an OS thread other than the main
// one, and leaves that thread locked so it ends with the goroutine. The main thread is
// avoided because the Go runtime cannot end it: it would stay parked in whatever netns fn
// left it, and /proc/self/ns/net (the main thread's) would then name that netns.
//
// It is not nsutil's Handle.Do: fn makes the namespace it moves into with unshare(2), so
// there is none to open and enter beforehand, and the thread ends in it instead of being
// switched back, so no goroutine can ever inherit it.
func onSpareThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			errc <- fn() // the thread stays locked
			return
		}
		// Holding the main thread here forces the inner goroutine onto another one.
		inner := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			inner <- fn()
		}()
		err := <-inner
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// newNetNSLocked moves its (locked) thread into a new netns, pins that netns at path (or,
// with path "", returns an open fd of it instead) and sets its lo up. The thread must stay
// locked whatever happens: after unshare it is in the wrong netns, so it must exit with
// the goroutine rather than run other goroutines.
func newNetNSLocked(path string) (fd int, err error) {
	fd = -1
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fd, fmt.Errorf("unshare: %w", err)
	}
	src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if path == "" {
		if fd, err = unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fd, fmt.Errorf("open %s: %w", src, err)
		}
		defer func() {
			if err != nil {
				unix.Close(fd)
				fd = -1
			}
		}()
	} else if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return fd, fmt.Errorf("bind %s: %w", src, err)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // a socket in this thread's (new) netns
	if err != nil {
		return fd, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fd, fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fd, fmt.Errorf("set lo up: %w", err)
	}
	return fd, nil
}

// PinNetNS bind-mounts the netns file from (for example /proc/<pid>/ns/net) at path.
// A path already pinning that same netns is left as it is.
func (k *Linux) PinNetNS(path, from string) error {
	src := from
	if from == "/proc/self/ns/net" {
		// Meant as "the daemon's netns". That is the netns of every thread that runs
		// goroutines, but not necessarily of the main thread that /proc/self names (see
		// onSpareThread), so pin the one nsutil.Current holds instead.
		self, err := nsutil.Current()
		if err != nil {
			return fmt.Errorf("pin netns %s at %s: %w", from, path, err)
		}
		defer self.Close()
		src = "/proc/self/fd/" + strconv.Itoa(self.Fd())
	}
	if k.NetNSExists(path) {
		same, err := nsutil.Same(path, src)
		if err != nil {
			return fmt.Errorf("pin netns %s at %s: %w", from, path, err)
		}
		if !same {
			return fmt.Errorf("pin netns %s at %s: path pins another netns", from, path)
		}
		return nil
	}
	created, err := prepareNetNSFile(path)
	if err == nil {
		err = unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err != nil && created {
			os.Remove(path)
		}
	}
	if err != nil {
		return fmt.Errorf("pin netns %s at %s: %w", from, path, err)
	}
	k.log.Debug("netns pinned", "netns", path, "from", from)
	return nil
}

// DeleteNetNS unpins path (every mount stacked on it) and removes the file; absent is
// not an error. The netns itself goes away once no process or socket uses it.
func (k *Linux) DeleteNetNS(path string) error {
	if err := unpin(path); err != nil {
		return err
	}
	k.log.Debug("netns deleted", "netns", path)
	return nil
}

// unpin is DeleteNetNS without the log line.
func unpin(path string) error {
	for range maxUnmounts {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("delete netns %s: unmount: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", path, err)
	}
	return nil
}

// NetNSExists reports whether path is a mounted netns file (on nsfs).
func (k *Linux) NetNSExists(path string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false
	}
	return fs.Type == unix.NSFS_MAGIC
}

// prepareNetNSFile makes path's directory a shared mount point and creates the empty
// file a netns is mounted on. created is false when a plain file was already there.
func prepareNetNSFile(path string) (created bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if err := ensureSharedMount(dir); err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, os.ErrExist) {
		return false, nil // a leftover mount point file (crash before the mount): reuse it
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// ensureSharedMount makes dir a mount point with shared propagation, as iproute2 does for
// /run/netns, so netns pinned there are visible in mount namespaces created later (and
// unpinning propagates to them) instead of keeping the netns alive from a stale copy.
func ensureSharedMount(dir string) error {
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) {
		if err != nil {
			return fmt.Errorf("make %s shared: %w", dir, err)
		}
		return nil
	}
	// EINVAL: dir is not a mount point yet. Bind it on itself, then share it.
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}
