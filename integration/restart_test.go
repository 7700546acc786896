package integration

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"berth/internal/nsutil"
)

// TestRestartAnswersRetryingClient: a client that keeps one UDP socket and retries
// 127.0.0.11:53 across a daemon crash and restart is answered once the daemon is back. Its
// conntrack entry, made while the NAT led to the dead daemon's port, must not outlive the
// restart (each retry refreshes it, so it would never expire: the "4 of 1,000 sandboxes
// never answered after a restart" of the benchmark).
func TestRestartAnswersRetryingClient(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "--subnet", "10.84.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	c, err := dialUDPIn("/run/netns/web", "127.0.0.11:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !askUntil(c, "web", 5*time.Second) {
		t.Fatal("no answer from 127.0.0.11 before the restart")
	}
	d.kill() // the sandbox's NAT table stays behind, leading to a port nobody listens on
	if askUntil(c, "web", 300*time.Millisecond) {
		t.Fatal("answered while the daemon was down")
	}
	d.start()
	if !askUntil(c, "web", 10*time.Second) {
		t.Fatal("the retrying client got no answer within 10s of the restart")
	}
}

// dialUDPIn returns a UDP socket connected to addr from inside the netns at nsPath (the
// socket keeps that netns; the thread goes back to the test's).
func dialUDPIn(nsPath, addr string) (net.Conn, error) {
	var c net.Conn
	err := nsutil.Do(nsPath, func() error {
		var err error
		c, err = net.Dial("udp", addr)
		return err
	})
	return c, err
}

// askUntil sends an A query for name on c every 20 ms until an answer with records comes
// back or d passes.
func askUntil(c net.Conn, name string, d time.Duration) bool {
	q := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, byte(len(name))}
	q = append(append(q, name...), 0, 0, 1, 0, 1)
	buf := make([]byte, 512)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		c.Write(q)
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && n >= 12 && binary.BigEndian.Uint16(buf[6:]) > 0 {
			return true
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			time.Sleep(20 * time.Millisecond) // refused: nobody behind the NAT
		}
	}
	return false
}
