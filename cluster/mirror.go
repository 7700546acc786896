package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"berth/netmgr"
	"berth/store"
)

// resyncDelay is the pause before a full resync after a failed Apply or a broken watch:
// long enough not to spin on an Apply that keeps failing, short enough that DNS catches
// up at once after a one-off failure.
const resyncDelay = 500 * time.Millisecond

// mirror hands Apply a full update, then the watch's changes, starting over on any break.
func (c *Client) mirror(ctx context.Context) {
	var bo backoff
	for ctx.Err() == nil {
		rev, known, err := c.fullSync(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.warnOnce(&bo, "cluster mirror: full sync failed", err)
				sleep(ctx, bo.next())
			}
			continue
		}
		if bo.n > 0 {
			c.log.Info("cluster mirror synced again", "rev", rev)
		}
		bo.reset()
		if c.beforeWatch != nil {
			c.beforeWatch(rev)
		}
		err = c.watch(ctx, rev, known)
		if ctx.Err() != nil {
			return
		}
		c.noteErr(err)
		c.log.Warn("cluster mirror: starting over with a full sync", "err", err)
		sleep(ctx, resyncDelay)
	}
}

// fullSync reads every global network and remote endpoint at one revision and applies
// them as a Full update. known is the set of remote endpoints' keys it applied.
func (c *Client) fullSync(ctx context.Context) (int64, map[string]bool, error) {
	rctx, cancel := c.reqCtx(ctx)
	resp, err := c.etcd.Txn(rctx).Then(
		clientv3.OpGet(c.keys.networks(), clientv3.WithPrefix()),
		clientv3.OpGet(c.keys.allEndpoints(), clientv3.WithPrefix()),
	).Commit()
	cancel()
	if err != nil {
		return 0, nil, c.fail("read global networks and endpoints", err)
	}
	u := netmgr.RemoteUpdate{Full: true, Rev: resp.Header.Revision}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		if n := c.decodeNetwork(kv); n != nil {
			u.Networks = append(u.Networks, n)
		}
	}
	known := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if ep := c.decodeEndpoint(kv); ep != nil {
			u.Endpoints = append(u.Endpoints, ep)
			known[string(kv.Key)] = true
		}
	}
	if err := c.cfg.Apply(ctx, u); err != nil {
		err = fmt.Errorf("apply full update at revision %d: %w", u.Rev, err)
		c.noteErr(err)
		return 0, nil, err
	}
	c.setRev(u.Rev)
	c.noteErr(nil)
	return u.Rev, known, nil
}

// watch applies the changes after rev, one update per watch response, until the watch
// breaks (compaction, cancellation, a failed Apply) or ctx is done.
func (c *Client) watch(ctx context.Context, rev int64, known map[string]bool) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watch stream: no goroutine stays behind
	// RequireLeader: a member cut off from its cluster's leader cancels the watch instead
	// of keeping it open with nothing coming (the mirror then reads again, from a member
	// that has a leader).
	wch := c.etcd.Watch(clientv3.WithRequireLeader(wctx), c.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("watch from revision %d: compacted up to %d", rev+1, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch from revision %d: %w", rev+1, err)
		}
		if len(resp.Events) == 0 {
			continue // progress notification
		}
		u := c.changes(resp.Events, known)
		if u.Rev <= rev {
			// The client resumes after the last revision it delivered; an event at or
			// below it would be a repeat, which Apply must never see.
			return fmt.Errorf("watch delivered revision %d after %d", u.Rev, rev)
		}
		rev = u.Rev
		if len(u.Networks)+len(u.RemovedNetworks)+len(u.Endpoints)+len(u.RemovedEndpoints) == 0 {
			c.setRev(rev) // only keys the mirror ignores (claims, hosts, indexes, own endpoints)
			continue
		}
		if err := c.cfg.Apply(ctx, u); err != nil {
			return fmt.Errorf("apply update at revision %d: %w", u.Rev, err)
		}
		c.setRev(rev)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch channel closed")
}

// changes turns one watch response into an update. Several events on one key collapse to
// the last (a put then a delete is a delete), so no ID is both changed and removed.
func (c *Client) changes(events []*clientv3.Event, known map[string]bool) netmgr.RemoteUpdate {
	var u netmgr.RemoteUpdate
	last := map[string]int{} // key -> index of its last event
	for i, ev := range events {
		last[string(ev.Kv.Key)] = i
		u.Rev = max(u.Rev, ev.Kv.ModRevision)
	}
	for i, ev := range events {
		key := string(ev.Kv.Key)
		if last[key] != i {
			continue
		}
		rest := strings.TrimPrefix(key, c.cfg.Prefix)
		del := ev.Type == mvccpb.DELETE
		switch {
		case strings.HasPrefix(rest, "networks/"):
			id := strings.TrimPrefix(rest, "networks/")
			if del {
				u.RemovedNetworks = append(u.RemovedNetworks, id)
			} else if n := c.decodeNetwork(ev.Kv); n != nil {
				u.Networks = append(u.Networks, n)
			}
		case strings.HasPrefix(rest, "endpoints/"):
			_, id, _ := strings.Cut(strings.TrimPrefix(rest, "endpoints/"), "/")
			var ep *store.Endpoint
			if !del {
				ep = c.decodeEndpoint(ev.Kv)
			}
			switch {
			case ep != nil:
				known[key] = true
				u.Endpoints = append(u.Endpoints, ep)
			case known[key]:
				// Deleted, or no longer a remote endpoint netmgr may hold.
				delete(known, key)
				u.RemovedEndpoints = append(u.RemovedEndpoints, id)
			}
		}
	}
	return u
}

// decodeNetwork decodes networks/ID, or logs why it skips it.
func (c *Client) decodeNetwork(kv *mvccpb.KeyValue) *store.Network {
	id := strings.TrimPrefix(string(kv.Key), c.keys.networks())
	var n store.Network
	if err := json.Unmarshal(kv.Value, &n); err != nil || n.ID != id || !n.Global() || n.VNI == 0 {
		c.log.Warn("cluster mirror: skipping a malformed global network", "key", string(kv.Key), "err", err)
		return nil
	}
	return &n
}

// decodeEndpoint decodes endpoints/NETID/EPID if it is another host's endpoint, or
// returns nil (this host's own, or malformed: logged).
func (c *Client) decodeEndpoint(kv *mvccpb.KeyValue) *store.Endpoint {
	netID, id, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), c.keys.allEndpoints()), "/")
	var ep store.Endpoint
	err := json.Unmarshal(kv.Value, &ep)
	if err == nil && ep.Host == c.cfg.HostID {
		return nil
	}
	if err != nil || ep.ID != id || ep.NetworkID != netID || ep.Host == "" || !ep.HostAddr.IsValid() {
		c.log.Warn("cluster mirror: skipping a malformed endpoint", "key", string(kv.Key), "err", err)
		return nil
	}
	return &ep
}

func (c *Client) setRev(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev = rev
}
