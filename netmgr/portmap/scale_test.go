package portmap

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestScale holds BERTH_PORTMAP_SCALE published ports as the daemon does for ports without
// a host IP (0.0.0.0 only holding, :: proxying) and reports the time, fds, goroutines and
// memory. It binds real ports from 20000 up, so run it in a netns of its own:
//
//	BERTH_PORTMAP_SCALE=5000 unshare --net go test -run TestScale -v ./netmgr/portmap
func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BERTH_PORTMAP_SCALE"))
	if n == 0 {
		t.Skip("set BERTH_PORTMAP_SCALE=N to hold N ports (in a netns of its own)")
	}
	if _, err := RaiseFileLimit(); err != nil {
		t.Log(err)
	}
	target := func() (netip.AddrPort, error) { return netip.MustParseAddrPort("127.0.0.1:9"), nil }
	m := newMap(t)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0, fd0 := runtime.NumGoroutine(), openFDs()
	start := time.Now()
	for i := range n {
		port := uint16(20000 + i)
		owner := fmt.Sprint("sb", i)
		for _, proto := range []string{"tcp", "udp"} {
			bs := []Binding{{Proto: proto, Host: netip.AddrPortFrom(netip.IPv4Unspecified(), port)},
				{Proto: proto, Host: netip.AddrPortFrom(netip.IPv6Unspecified(), port), Target: target}}
			if err := m.Hold(owner, bs); err != nil {
				t.Fatal(err)
			}
			if proto == "tcp" && i%2 == 0 {
				break // half the ports TCP only
			}
		}
	}
	held := time.Since(start)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d ports, %d sockets: hold %v (%v per socket); +%d fds, +%d goroutines, +%.1f MiB Go memory (sys)",
		n, m.Len(), held.Round(time.Millisecond), (held / time.Duration(m.Len())).Round(time.Microsecond),
		openFDs()-fd0, runtime.NumGoroutine()-g0, float64(after.Sys-before.Sys)/(1<<20))
	start = time.Now()
	for i := range n {
		m.Release(fmt.Sprint("sb", i))
	}
	t.Logf("release: %v; %d fds left over", time.Since(start).Round(time.Millisecond), openFDs()-fd0)
}

func openFDs() int {
	es, _ := os.ReadDir("/proc/self/fd")
	return len(es)
}
