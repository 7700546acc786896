package nsutil

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"

	"berth/internal/testns"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { os.Exit(testns.Main(m)) }

// threadNetNS returns the inode of the calling thread's netns.
func threadNetNS(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestDo(t *testing.T) {
	testns.Require(t)
	path := testns.NewNetNS(t, "nsutil-do")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNetNS(t)

	var inside uint64
	errFn := errors.New("from fn")
	err := Do(path, func() error {
		inside = threadNetNS(t)
		return errFn
	})
	if !errors.Is(err, errFn) {
		t.Errorf("Do: got err %v; want fn's error", err)
	}
	if want := nsIno(t, path); inside != want {
		t.Errorf("netns inside fn: got ino %d; want %d (%s)", inside, want, path)
	}
	if after := threadNetNS(t); after != before {
		t.Errorf("caller's netns after Do: got ino %d; want %d", after, before)
	}
	if err := Do("/run/netns/missing", func() error { return nil }); err == nil {
		t.Error("Do on a missing netns: got nil error")
	}
	if err := Do("", func() error { inside = threadNetNS(t); return nil }); err != nil || inside != before {
		t.Errorf("Do with empty path: got ino %d, err %v; want ino %d, nil", inside, err, before)
	}
}

func TestListen(t *testing.T) {
	testns.Require(t)
	path := testns.NewNetNS(t, "nsutil-listen")

	udp, err := ListenUDP(path, "127.0.0.1:0") // lo is down, but binding works
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	assertConnIn(t, udp, path)

	tcp, err := ListenTCP(path, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	assertConnIn(t, tcp, path)

	here, err := ListenUDP("", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	// Not /proc/self/ns/net: that is the main thread's netns, and the Go runtime parks the
	// main thread for good (instead of ending it) when a goroutine locked to it exits, in
	// whatever netns that goroutine left it. Any thread running goroutines is where we are.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	assertConnIn(t, here, "/proc/thread-self/ns/net")
}

func assertConnIn(t *testing.T, c syscall.Conn, path string) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) { testns.AssertSocketInNetNS(t, int(fd), path) })
}

// TestIDOf: a netns has one ID through a path and through an open fd, and another netns
// has another.
func TestIDOf(t *testing.T) {
	self, err := IDOf("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if byFd, err := IDOfFd(int(f.Fd())); err != nil || byFd != self {
		t.Errorf("IDOfFd: %v, %v; want %v", byFd, err, self)
	}
	if other, err := IDOf("/proc/self/ns/mnt"); err != nil || other == self {
		t.Errorf("IDOf of another namespace: %v, %v; want something else than %v", other, err, self)
	}
}
