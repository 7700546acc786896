package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"berth/store"
)

const (
	// maxTxnOps keeps each publisher transaction under etcd's --max-txn-ops (128 by default).
	maxTxnOps = 100
	// Backoff of the loops while etcd is unreachable: fast enough to notice its return
	// within a second or so, slow enough not to spin.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Run keeps the host registered and runs the publisher and the mirror until ctx is done or
// Close is called. It returns nil then; it never gives up while etcd is unreachable.
func (c *Client) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("cluster client: Run called twice")
	}
	defer close(c.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.runCtx, cancel)()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.mirror(ctx)
	}()
	c.sessions(ctx)
	cancel()
	wg.Wait()
	return nil
}

// session is one grant of the host lease, kept alive until it is lost.
type session struct {
	lease clientv3.LeaseID
	alive <-chan *clientv3.LeaseKeepAliveResponse // closed when the lease is lost
	stop  context.CancelFunc                      // ends the keepalive
}

// sessions registers the host, publishes its endpoints on the lease and starts again with
// a new lease whenever it is lost (etcd unreachable for a whole TTL, or the lease revoked).
func (c *Client) sessions(ctx context.Context) {
	var bo backoff
	for ctx.Err() == nil {
		s, err := c.register(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.warnOnce(&bo, "cluster host registration failed", err)
				sleep(ctx, bo.next())
			}
			continue
		}
		bo.reset()
		c.log.Info("cluster host registered", "host", c.cfg.HostID, "addr", c.cfg.Advertise, "lease", fmt.Sprintf("%x", s.lease))
		if c.cfg.Registered != nil {
			c.cfg.Registered(ctx)
		}
		c.publish(ctx, s)
		s.stop()
		if ctx.Err() != nil {
			return // the lease stays for Close to revoke
		}
		c.setLease(0)
	}
}

// register grants a lease and puts hosts/HOSTID on it.
func (c *Client) register(ctx context.Context) (*session, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	ttl := int64(c.cfg.TTL / time.Second)
	grant, err := c.etcd.Grant(rctx, ttl)
	if err != nil {
		return nil, c.fail("grant host lease", err)
	}
	val, err := json.Marshal(hostValue{ID: c.cfg.HostID, Addr: c.cfg.Advertise.String()})
	if err != nil {
		return nil, err
	}
	if err := c.putHost(rctx, grant.ID, string(val)); err != nil {
		c.revoke(grant.ID)
		return nil, err
	}
	kctx, stop := context.WithCancel(ctx)
	alive, err := c.etcd.KeepAlive(kctx, grant.ID)
	if err != nil {
		stop()
		c.revoke(grant.ID)
		return nil, c.fail("keep host lease alive", err)
	}
	c.setLease(grant.ID)
	c.noteErr(nil)
	return &session{lease: grant.ID, alive: alive, stop: stop}, nil
}

// putHost puts hosts/HOSTID on lease. A key already there from this host's earlier run
// (same address: the daemon restarted within a TTL) is taken over; one with another
// address is another live host with the same ID, or this host's old address still on
// its lease: registration waits for that lease to expire rather than have two hosts
// publish as one (each would then ignore the other's endpoints as its own).
func (c *Client) putHost(ctx context.Context, lease clientv3.LeaseID, val string) error {
	key := c.keys.host(c.cfg.HostID)
	resp, err := c.etcd.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return c.fail("register host", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("register host: %s went away meanwhile", key) // expired: the next try creates it
	}
	var held hostValue
	if err := json.Unmarshal(kvs[0].Value, &held); err != nil || held.Addr != c.cfg.Advertise.String() {
		err := fmt.Errorf("register host: host ID %s is registered from %s (another host with this ID?): waiting for its lease to expire", c.cfg.HostID, held.Addr)
		c.noteErr(err)
		return err
	}
	resp, err = c.etcd.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(lease))).Commit()
	if err != nil {
		return c.fail("register host", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("register host: %s changed meanwhile", key)
	}
	return nil
}

// revoke drops a lease that was granted but is not going to be used, best effort: if
// etcd does not answer it expires on its own one TTL later.
func (c *Client) revoke(id clientv3.LeaseID) {
	ctx, cancel := c.reqCtx(context.Background())
	defer cancel()
	c.etcd.Revoke(ctx, id)
}

// hostValue is the value of hosts/HOSTID.
type hostValue struct {
	ID   string `json:"ID"`
	Addr string `json:"Addr"`
}

// publish syncs this host's endpoints to etcd on s's lease at once and after every Kick,
// until the lease is lost or ctx is done. A failed sync is retried with backoff.
func (c *Client) publish(ctx context.Context, s *session) {
	// published is what this session put (key -> value); nil until the first sync, which
	// reads what an earlier run of this host left under endpoints/.
	var published map[string]string
	var bo backoff
	pending := true
	var retry <-chan time.Time
	for {
		if pending && retry == nil {
			var err error
			published, err = c.sync(ctx, s.lease, published)
			switch {
			case err == nil:
				pending = false
				if bo.n > 0 {
					c.log.Info("cluster publisher synced again")
				}
				bo.reset()
			case leaseLost(err):
				c.log.Warn("cluster host lease lost", "host", c.cfg.HostID, "err", err)
				return
			case ctx.Err() != nil:
				return
			default:
				c.warnOnce(&bo, "cluster publisher failed", err)
				retry = time.After(bo.next())
			}
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-s.alive:
			if !ok {
				c.log.Warn("cluster host lease lost", "host", c.cfg.HostID, "lease", fmt.Sprintf("%x", s.lease))
				return
			}
		case <-c.kick:
			pending = true
		case <-retry:
			retry = nil
		}
	}
}

// sync puts every ready local endpoint on a global network of Snapshot() that differs from
// what was published, and deletes the published ones that are gone. It returns what is
// published now (also after a partial failure, so the retry does only the rest).
func (c *Client) sync(ctx context.Context, lease clientv3.LeaseID, published map[string]string) (map[string]string, error) {
	if published == nil {
		prev, err := c.leftovers(ctx)
		if err != nil {
			return nil, err
		}
		published = prev
	}
	want, err := c.wanted()
	if err != nil {
		return published, err
	}
	var ops []clientv3.Op
	for key, val := range want {
		if published[key] != val {
			ops = append(ops, clientv3.OpPut(key, val, clientv3.WithLease(lease)))
		}
	}
	for key := range published {
		if _, ok := want[key]; !ok {
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	for len(ops) > 0 {
		batch := ops[:min(len(ops), maxTxnOps)]
		rctx, cancel := c.reqCtx(ctx)
		_, err := c.etcd.Txn(rctx).Then(batch...).Commit()
		cancel()
		if err != nil {
			return published, c.fail("publish endpoints", err)
		}
		for _, op := range batch {
			key := string(op.KeyBytes())
			if op.IsDelete() {
				delete(published, key)
			} else {
				published[key] = want[key]
			}
		}
		ops = ops[len(batch):]
	}
	c.noteErr(nil)
	return published, nil
}

// leftovers finds the endpoints this host published before (an earlier run, or a lease
// that was lost): they are not on the current lease, so each is put again or deleted.
func (c *Client) leftovers(ctx context.Context) (map[string]string, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.etcd.Get(rctx, c.keys.allEndpoints(), clientv3.WithPrefix())
	if err != nil {
		return nil, c.fail("read published endpoints", err)
	}
	prev := map[string]string{}
	for _, kv := range resp.Kvs {
		var ep store.Endpoint
		if json.Unmarshal(kv.Value, &ep) == nil && ep.Host == c.cfg.HostID {
			prev[string(kv.Key)] = "" // never equal to a value: put again on the new lease
		}
	}
	return prev, nil
}

// wanted is what this host publishes now: key -> endpoint JSON.
func (c *Client) wanted() (map[string]string, error) {
	snap := c.cfg.Snapshot()
	want := map[string]string{}
	for _, n := range snap.Networks() {
		if !n.Global() {
			continue
		}
		for _, ep := range snap.NetworkEndpoints(n.ID) {
			if ep.Remote() {
				continue
			}
			sb, err := snap.Sandbox(ep.SandboxID)
			if err != nil || sb.State != store.StateReady {
				continue
			}
			p := ep.Copy()
			p.Host, p.HostAddr, p.SandboxName = c.cfg.HostID, c.cfg.Advertise, sb.Name
			p.HostVeth, p.Links, p.Seq = "", nil, 0 // this host's business only
			val, err := json.Marshal(p)
			if err != nil {
				return nil, fmt.Errorf("encode endpoint %s: %w", store.ShortID(ep.ID), err)
			}
			want[c.keys.endpoint(n.ID, ep.ID)] = string(val)
		}
	}
	return want, nil
}

// leaseLost reports whether a write failed because the lease it was put on is gone.
func leaseLost(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || strings.Contains(err.Error(), rpctypes.ErrLeaseNotFound.Error())
}

// backoff is the delay between the retries of a loop while etcd is unreachable.
type backoff struct{ n int }

func (b *backoff) next() time.Duration {
	d := minBackoff << min(b.n, 10)
	b.n++
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1) // jitter: hosts that lost etcd together do not retry together
}

func (b *backoff) reset() { b.n = 0 }

// warnOnce logs the first failure of an outage at Warn and the retries at Debug, so a long
// outage does not flood the log; Status keeps the last error meanwhile.
func (c *Client) warnOnce(bo *backoff, msg string, err error) {
	if bo.n == 0 {
		c.log.Warn(msg, "err", err)
	} else {
		c.log.Debug(msg, "err", err, "attempt", bo.n+1)
	}
}
