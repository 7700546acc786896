package kernel

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// CreateUTSNS makes a new UTS namespace with hostname and domainname set and pins it at
// path (a bind mount of the namespace file, like a netns pin), so `berth exec` and `berth
// run` can enter it for as long as the sandbox exists. A path that already holds a UTS
// namespace is left as it is: its names are the ones set when it was made.
func (k *Linux) CreateUTSNS(path, hostname, domainname string) error {
	if k.NetNSExists(path) { // any namespace file: nsfs
		return nil
	}
	// Its directory (RunDir/uts) is made a shared mount as /run/netns is, so the pins show
	// up in mount namespaces made later, `berth exec`'s included.
	created, err := prepareNetNSFile(path)
	if err != nil {
		return fmt.Errorf("create uts namespace %s: %w", path, err)
	}
	// unshare moves only this (spare, locked) thread, which then ends with its goroutine:
	// the daemon's own hostname never changes.
	err = onSpareThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("sethostname %q: %w", hostname, err)
		}
		// Without one the domain name stays the daemon's ("(none)" as a rule), as runc
		// leaves it.
		if domainname != "" {
			if err := unix.Setdomainname([]byte(domainname)); err != nil {
				return fmt.Errorf("setdomainname %q: %w", domainname, err)
			}
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/uts", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		return nil
	})
	if err != nil {
		if created {
			os.Remove(path)
		}
		return fmt.Errorf("create uts namespace %s: %w", path, err)
	}
	k.log.Debug("uts namespace created", "path", path, "hostname", hostname)
	return nil
}

// DeleteUTSNS unpins a UTS namespace pinned by CreateUTSNS; absent is not an error.
func (k *Linux) DeleteUTSNS(path string) error {
	if err := unpin(path); err != nil {
		return fmt.Errorf("uts namespace: %w", err)
	}
	return nil
}
