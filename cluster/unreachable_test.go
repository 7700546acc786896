package cluster

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"berth/netmgr"
)

// TestUnreachable: with etcd stopped New and Run do not fail, and every call fails with
// ErrClusterUnreachable within the timeout; when etcd is back the host registers and the
// calls work.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	srv, eps := startEtcd(t)
	srv.Stop()
	const timeout = 500 * time.Millisecond
	h := newHost(t, eps, "h", "192.0.2.1", func(c *Config) { c.Timeout = timeout })
	h.run()
	ctx := context.Background()
	n := overlay("ov", "10.70.0.0/24")
	calls := []struct {
		name string
		call func() error
	}{
		{"ClaimAddr", func() error { return h.c.ClaimAddr(ctx, n.ID, netip.MustParseAddr("10.70.0.2"), "ep") }},
		{"CreateNetwork", func() error { _, err := h.c.CreateNetwork(ctx, n); return err }},
		{"RemoveNetwork", func() error { return h.c.RemoveNetwork(ctx, n.ID) }},
		{"ReleaseAddr", func() error { return h.c.ReleaseAddr(ctx, n.ID, netip.MustParseAddr("10.70.0.2"), "ep") }},
		{"Claims", func() error { _, err := h.c.Claims(ctx); return err }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		took := time.Since(start)
		t.Logf("%s with etcd down: %v after %v (timeout %v)", c.name, err, took, timeout)
		if !errors.Is(err, netmgr.ErrClusterUnreachable) || !strings.HasPrefix(err.Error(), "cluster store unreachable: ") {
			t.Errorf("%s: %v; want ErrClusterUnreachable, reading \"cluster store unreachable: ...\"", c.name, err)
		}
		if took > timeout+200*time.Millisecond {
			t.Errorf("%s took %v; want about the timeout %v", c.name, took, timeout)
		}
	}
	st := h.c.Status()
	if st.Connected || st.LastError == "" {
		t.Errorf("status with etcd down %+v; want not connected, an error", st)
	}
	select {
	case <-h.ran:
		t.Fatal("Run returned while etcd is down")
	default:
	}

	srv.Restart()
	d := waitFor(t, "connected after etcd came back", 10*time.Second, func() bool { return h.c.Status().Connected })
	t.Logf("registered %v after etcd was healthy again", d)
	if _, err := h.c.CreateNetwork(ctx, n); err != nil {
		t.Fatalf("create after etcd came back: %v", err)
	}
	waitFor(t, "mirror caught up", 5*time.Second, func() bool { return h.rec.network(n.ID) != nil })
}

// TestCloseLeavesNothing: Close ends every goroutine the client started and revokes its
// lease (its host key goes at once, not one TTL later).
func TestCloseLeavesNothing(t *testing.T) {
	_, eps := startEtcd(t)
	raw := rawClient(t, eps)
	count(t, raw, "/") // the raw client's own goroutines are up before the baseline
	before := runtime.NumGoroutine()
	for range 3 {
		h := startHost(t, eps, "h", "192.0.2.1", func(c *Config) { c.TTL = 30 * time.Second })
		waitFor(t, "registered", 5*time.Second, func() bool { return h.c.Status().Connected })
		n := created(t, h, overlay("ov", "10.71.0.0/24"))
		h.join(n, "web", "10.71.0.2")
		waitFor(t, "published", 5*time.Second, func() bool { return count(t, raw, "/berth/v1/endpoints/") == 1 })
		if err := h.c.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		<-h.ran
		if got := count(t, raw, "/berth/v1/hosts/") + count(t, raw, "/berth/v1/endpoints/"); got != 0 {
			t.Errorf("%d host and endpoint keys after Close; want 0 (lease revoked)", got)
		}
		if err := h.c.RemoveNetwork(context.Background(), n.ID); err == nil {
			t.Errorf("a closed client still works")
		}
		if _, err := raw.Delete(context.Background(), "/berth/v1/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	}
	var after int
	waitFor(t, "goroutines back to the baseline", 5*time.Second, func() bool {
		after = runtime.NumGoroutine()
		return after <= before
	})
	t.Logf("goroutines: %d before, %d after three clients ran and closed", before, after)
}
