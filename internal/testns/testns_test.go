package testns

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestPrivateNamespace(t *testing.T) {
	Require(t)
	// The parent is the test binary as first started, in the machine's namespaces.
	var self, parent unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", os.Getppid()), &parent); err != nil {
		t.Fatal(err)
	}
	if self.Ino == parent.Ino {
		t.Fatalf("tests run in the netns of their parent (ino %d); want a private one", self.Ino)
	}
	for _, dir := range Dirs {
		var fs unix.Statfs_t
		if err := unix.Statfs(dir, &fs); err != nil {
			t.Fatal(err)
		}
		if fs.Type != unix.TMPFS_MAGIC {
			t.Errorf("%s: fs type %#x; want tmpfs", dir, fs.Type)
		}
	}
	snap := KernelSnapshot(t)
	if !strings.Contains(snap, "link lo device") {
		t.Errorf("snapshot %q: want a lo link", snap)
	}
}

func TestAssertSocketInNetNS(t *testing.T) {
	Require(t)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) { AssertSocketInNetNS(t, int(fd), "/proc/self/ns/net") })
}
