package cluster

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestLeaseLost: when the host's lease is gone (revoked here, as an operator or a lease
// expiry during a partition would), the host registers again on a new lease, calls
// Registered again and republishes every endpoint.
func TestLeaseLost(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	raw := rawClient(t, eps)
	var registered atomic.Int32
	a := startHost(t, eps, "a", "192.0.2.1", func(c *Config) { c.Registered = func(context.Context) { registered.Add(1) } })
	n := created(t, a, overlay("ov", "10.80.0.0/24"))
	ep := a.join(n, "web", "10.80.0.2")
	key := "/berth/v1/endpoints/" + n.ID + "/" + ep.ID
	waitFor(t, "published", 5*time.Second, func() bool { return count(t, raw, key) == 1 })
	old := a.c.leaseID()
	start := time.Now()
	if _, err := raw.Revoke(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "republished on a new lease", 5*time.Second, func() bool {
		return count(t, raw, key) == 1 && count(t, raw, "/berth/v1/hosts/a") == 1 && registered.Load() == 2
	})
	t.Logf("re-registered and republished %v after the lease was revoked", time.Since(start))
	if l := keyLease(t, raw, key); l == old || l != a.c.leaseID() {
		t.Errorf("endpoint on lease %x; want the new lease %x (old %x)", l, a.c.leaseID(), old)
	}
}

// TestEtcdDownLongerThanTTL: etcd away for more than a TTL; the client gives the lease up,
// and once etcd is back it registers on a new lease and republishes.
func TestEtcdDownLongerThanTTL(t *testing.T) {
	t.Parallel()
	srv, eps := startEtcd(t)
	raw := rawClient(t, eps)
	var registered atomic.Int32
	a := startHost(t, eps, "a", "192.0.2.1", func(c *Config) { c.Registered = func(context.Context) { registered.Add(1) } })
	n := created(t, a, overlay("ov", "10.81.0.0/24"))
	ep := a.join(n, "web", "10.81.0.2")
	key := "/berth/v1/endpoints/" + n.ID + "/" + ep.ID
	waitFor(t, "published", 5*time.Second, func() bool { return count(t, raw, key) == 1 })
	old := a.c.leaseID()
	srv.Stop()
	waitFor(t, "lease given up", 10*time.Second, func() bool { return a.c.leaseID() != old })
	if a.c.Status().Connected {
		t.Errorf("connected with etcd down")
	}
	srv.Restart()
	start := time.Now()
	waitFor(t, "registered again", 10*time.Second, func() bool { return registered.Load() == 2 && a.c.Status().Connected })
	waitFor(t, "republished on the new lease", 5*time.Second, func() bool { return keyLease(t, raw, key) == a.c.leaseID() })
	t.Logf("re-registered and republished %v after etcd was back", time.Since(start))
}

// keyLease is the lease key is on, or 0.
func keyLease(t *testing.T, raw *clientv3.Client, key string) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := raw.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

// TestDuplicateHostID: a second host with a live host's ID (another address) does not
// register until the first one's lease has expired; the daemon restarting with the same
// address takes its own key over at once.
func TestDuplicateHostID(t *testing.T) {
	t.Parallel()
	_, eps := startEtcd(t)
	a := startHost(t, eps, "dup", "192.0.2.1", nil)
	waitFor(t, "a registered", 5*time.Second, func() bool { return a.c.Status().Connected })
	b := startHost(t, eps, "dup", "192.0.2.2", nil)
	waitFor(t, "b refused", 5*time.Second, func() bool {
		return strings.Contains(b.c.Status().LastError, "host ID dup is registered from 192.0.2.1")
	})
	if b.c.Status().Connected {
		t.Errorf("b registered while a holds the ID")
	}
	a.die()
	d := waitFor(t, "b registered after a's lease expired", 10*time.Second, func() bool { return b.c.Status().Connected })
	t.Logf("b registered %v after a died (TTL 2s)", d)

	// b restarts (same address) while its key is still on the old lease.
	b.die()
	b2 := startHost(t, eps, "dup", "192.0.2.2", nil)
	d = waitFor(t, "b's restart registered", 5*time.Second, func() bool { return b2.c.Status().Connected })
	if d > time.Second {
		t.Errorf("restart took %v to register; want it to take its own key over at once", d)
	}
}

// TestPublisherRetries: a change made while etcd is away (shorter than the TTL) is
// published on the same lease once it is back, without another Kick.
func TestPublisherRetries(t *testing.T) {
	t.Parallel()
	srv, eps := startEtcd(t)
	raw := rawClient(t, eps)
	a := startHost(t, eps, "a", "192.0.2.1", func(c *Config) { c.TTL = DefaultTTL })
	n := created(t, a, overlay("ov", "10.82.0.0/24"))
	waitFor(t, "registered", 5*time.Second, func() bool { return a.c.Status().Connected })
	lease := a.c.leaseID()
	srv.Stop()
	ep := a.join(n, "web", "10.82.0.2")
	time.Sleep(1500 * time.Millisecond) // a few failed attempts
	if a.c.Status().LastError == "" {
		t.Errorf("no error noted while etcd is down")
	}
	srv.Restart()
	start := time.Now()
	key := "/berth/v1/endpoints/" + n.ID + "/" + ep.ID
	waitFor(t, "published after etcd came back", 10*time.Second, func() bool { return keyLease(t, raw, key) == lease })
	t.Logf("published %v after etcd was back, on the lease it had before", time.Since(start))
	if got := a.c.leaseID(); got != lease {
		t.Errorf("lease %x; want %x kept", got, lease)
	}
}
