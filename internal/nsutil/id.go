package nsutil

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ID identifies a network namespace: the device and inode of its nsfs file, the same
// through every path or file descriptor that names it (a pin under /run/netns,
// /proc/PID/ns/net, /proc/thread-self/ns/net, an open fd).
type ID struct{ Dev, Ino uint64 }

// IDOf returns the ID of the netns file at path.
func IDOf(path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ID{}, fmt.Errorf("stat netns %s: %w", path, err)
	}
	return ID{uint64(st.Dev), st.Ino}, nil
}

// IDOfFd returns the ID of the netns file open at fd.
func IDOfFd(fd int) (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ID{}, fmt.Errorf("stat netns fd: %w", err)
	}
	return ID{uint64(st.Dev), st.Ino}, nil
}

// Same reports whether the namespace files at a and b are one namespace (the same nsfs
// inode: a pin and the /proc/PID/ns/net it was made from, say).
func Same(a, b string) (bool, error) {
	ia, err := IDOf(a)
	if err != nil {
		return false, err
	}
	ib, err := IDOf(b)
	return err == nil && ia == ib, err
}
