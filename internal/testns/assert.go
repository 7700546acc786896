package testns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// siocgskns is SIOCGSKNS from linux/sockios.h: it returns a new fd of the network
// namespace a socket was created in (moby uses it to check its DNS sockets).
const siocgskns = 0x894C

// AssertSocketInNetNS fails the test unless the socket fd belongs to the netns at nsPath
// (for example /run/netns/web). For "the current netns" pass /proc/thread-self/ns/net
// from a goroutine locked to its thread, not /proc/self/ns/net: that is the main thread's,
// which the Go runtime parks for good, in whatever netns it was, when a goroutine locked
// to it exits.
func AssertSocketInNetNS(t testing.TB, fd int, nsPath string) {
	t.Helper()
	nsfd, err := unix.IoctlRetInt(fd, siocgskns)
	if err != nil {
		t.Fatalf("ioctl SIOCGSKNS on fd %d: %v", fd, err)
	}
	defer unix.Close(nsfd)
	var got, want unix.Stat_t
	if err := unix.Fstat(nsfd, &got); err != nil {
		t.Fatalf("fstat netns of fd %d: %v", fd, err)
	}
	if err := unix.Stat(nsPath, &want); err != nil {
		t.Fatalf("stat %s: %v", nsPath, err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		t.Fatalf("socket fd %d is in netns (dev %d, ino %d); want %s (dev %d, ino %d)",
			fd, got.Dev, got.Ino, nsPath, want.Dev, want.Ino)
	}
}

// KernelSnapshot describes what berth may leave behind in the current netns and the
// mounted directories: links (name and type), the entries of /run/netns and everything
// under /etc/netns, one per sorted line. Compare a snapshot taken before a test with one
// taken after to check that the test cleaned up.
func KernelSnapshot(t testing.TB) string {
	t.Helper()
	var lines []string
	links, err := netlink.LinkList()
	for i := 0; errors.Is(err, netlink.ErrDumpInterrupted) && i < 5; i++ {
		links, err = netlink.LinkList() // a link changed during the dump: read again
	}
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	for _, l := range links {
		lines = append(lines, fmt.Sprintf("link %s %s", l.Attrs().Name, l.Type()))
	}
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("read /run/netns: %v", err)
	}
	for _, e := range entries {
		lines = append(lines, "netns "+e.Name())
	}
	err = filepath.WalkDir("/etc/netns", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if path != "/etc/netns" {
			lines = append(lines, "file "+path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk /etc/netns: %v", err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
