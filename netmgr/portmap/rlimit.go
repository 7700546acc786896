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
// the soft limit in force. Where the hard limit may not be raised (no CAP_SYS_RESOURCE, as
// in some containers), the soft one is raised to it; the error says that even this failed.
// Either way the daemon runs: a bind that runs out of fds fails that one create (EMFILE).
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
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: max(want, lim.Max)}); err == nil {
		return want, nil
	}
	if lim.Cur >= lim.Max {
		return lim.Cur, nil
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim.Max, Max: lim.Max}); err != nil {
		return lim.Cur, fmt.Errorf("setrlimit nofile %d: %w", lim.Max, err)
	}
	return lim.Max, nil
}
