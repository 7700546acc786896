package dnstest

import (
	"net"
	"testing"
	"time"

	"berth/internal/nsutil"
)

// DialTCP opens n TCP connections to 127.0.0.11:53 inside the netns at nsPath (through the
// NAT, as a process there would), closed when the test ends.
func DialTCP(t testing.TB, nsPath string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	err := nsutil.Do(nsPath, func() error {
		for range n {
			c, err := net.DialTimeout("tcp", "127.0.0.11:53", 5*time.Second)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dial 127.0.0.11:53 (%d open): %v", len(conns), err)
	}
	return conns
}
