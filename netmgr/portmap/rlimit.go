package portmap

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// wantFiles is the open-file limit the daemon asks for: each published port holds one fd
// per host address (two for a port without a host IP), so 5,000 published ports take
// 10,000 fds before the sandboxes' DNS sockets and the API's connections. Go raises the
// soft limit to the hard one at start; this raises the hard one too, when the daemon may
// (root has CAP_SYS_RESOURCE), up to the kernel's fs.nr_open.
const wantFiles = 1 << 20

// RaiseFileLimit raises RLIMIT_NOFILE to wantFiles (or fs.nr_open, if lower) and returns
// the soft limit in force. A limit that cannot be raised is kept, with the error: the
// daemon still runs, and a bind that runs out of fds fails that one create with EMFILE.
func RaiseFileLimit() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	want := uint64(wantFiles)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < want {
			want = n
		}
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	next := unix.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &next); err != nil {
		// Not allowed to raise the hard limit: take what it allows.
		next = unix.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err2 := unix.Setrlimit(unix.RLIMIT_NOFILE, &next); err2 != nil {
			return lim.Cur, fmt.Errorf("setrlimit nofile %d: %w", want, err)
		}
		return next.Cur, fmt.Errorf("setrlimit nofile %d: %w (kept %d)", want, err, next.Cur)
	}
	return next.Cur, nil
}
