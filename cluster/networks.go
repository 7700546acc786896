package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"berth/store"
)

const (
	// firstVNI is Docker's first overlay VNI (libnetwork's vxlanIDStart).
	firstVNI = 4096
	// maxVNI is the largest VXLAN network identifier (24 bits).
	maxVNI = 1<<24 - 1
	// createAttempts bounds the retries of a create or remove that lost a race on the
	// keys it read (another host allocating a VNI or a subnet at the same moment).
	createAttempts = 8
)

// CreateNetwork records global network n and returns the VNI it allocated (see doc.go).
func (c *Client) CreateNetwork(ctx context.Context, n *store.Network) (int, error) {
	op := fmt.Sprintf("create global network %s", n.Name)
	// The mirror hands every host exactly this record: without these it would skip it.
	if n.ID == "" || n.Name == "" || !n.Global() || n.Driver != store.DriverOverlay {
		return 0, fmt.Errorf("%s: want an overlay network with ID, name and global scope", op)
	}
	for attempt := 0; ; attempt++ {
		vni, retry, err := c.createOnce(ctx, n)
		if err != nil {
			return 0, c.fail(op, err)
		}
		if !retry {
			c.noteErr(nil)
			return vni, nil
		}
		if attempt+1 == createAttempts {
			return 0, c.fail(op, fmt.Errorf("lost the race for a VNI or subnet %d times: %w", createAttempts, store.ErrConflict))
		}
		// Jitter, so the hosts that raced do not collide again in lockstep.
		if err := sleep(ctx, time.Duration(5+rand.IntN(20*(attempt+1)))*time.Millisecond); err != nil {
			return 0, fmt.Errorf("%s: %w", op, err)
		}
	}
}

// createOnce makes one attempt; retry means another writer changed vni/ or subnets/ after
// the read, so the choice must be made again.
func (c *Client) createOnce(ctx context.Context, n *store.Network) (vni int, retry bool, err error) {
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	k := c.keys
	// vni/ and subnets/ at one revision: a txn of two reads.
	read, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(k.vnis(), clientv3.WithPrefix()),
		clientv3.OpGet(k.subnets(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, false, err
	}
	rev := read.Header.Revision
	used := map[int]bool{}
	for _, kv := range read.Responses[0].GetResponseRange().Kvs {
		if v, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), k.vnis())); err == nil {
			used[v] = true
		}
	}
	for _, kv := range read.Responses[1].GetResponseRange().Kvs {
		taken, err := netip.ParsePrefix(strings.TrimPrefix(string(kv.Key), k.subnets()))
		if err != nil {
			continue // not berth's: it cannot name an overlap
		}
		for _, s := range n.Subnets {
			if s.Subnet.Overlaps(taken) {
				return 0, false, fmt.Errorf("subnet %s overlaps %s of global network %s: %w",
					s.Subnet, taken, c.networkName(ctx, string(kv.Value)), store.ErrConflict)
			}
		}
	}
	vni = firstVNI
	for used[vni] {
		vni++
	}
	if vni > maxVNI {
		return 0, false, fmt.Errorf("no free VNI: %w", store.ErrConflict)
	}
	rec := n.Copy()
	rec.VNI = vni
	val, err := json.Marshal(rec)
	if err != nil {
		return 0, false, fmt.Errorf("encode network: %w", err)
	}
	name := k.netname(strings.ToLower(n.Name))
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(name), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(k.network(n.ID)), "=", 0),
		// Nothing allocated or freed under vni/ and subnets/ since the read (a key that
		// is there now and was changed after rev fails the compare).
		clientv3.Compare(clientv3.ModRevision(k.vnis()), "<", rev+1).WithPrefix(),
		clientv3.Compare(clientv3.ModRevision(k.subnets()), "<", rev+1).WithPrefix(),
		clientv3.Compare(clientv3.CreateRevision(k.vni(vni)), "=", 0),
	}
	puts := []clientv3.Op{
		clientv3.OpPut(k.network(n.ID), string(val)),
		clientv3.OpPut(name, n.ID),
		clientv3.OpPut(k.vni(vni), n.ID),
	}
	for _, s := range n.Subnets {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k.subnet(s.Subnet)), "=", 0))
		puts = append(puts, clientv3.OpPut(k.subnet(s.Subnet), n.ID))
	}
	resp, err := c.etcd.Txn(ctx).If(cmps...).Then(puts...).Else(
		clientv3.OpGet(name),
		clientv3.OpGet(k.network(n.ID)),
	).Commit()
	if err != nil {
		return 0, false, err
	}
	if resp.Succeeded {
		return vni, false, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return 0, false, fmt.Errorf("name is taken by global network %s: %w", store.ShortID(string(kvs[0].Value)), store.ErrConflict)
	}
	if len(resp.Responses[1].GetResponseRange().Kvs) > 0 {
		return 0, false, fmt.Errorf("network ID %s is taken: %w", store.ShortID(n.ID), store.ErrConflict)
	}
	return 0, true, nil
}

// networkName names global network id in an error message: its name, or its short ID if
// it cannot be read.
func (c *Client) networkName(ctx context.Context, id string) string {
	if n, _, err := c.getNetwork(ctx, id); err == nil {
		return n.Name
	}
	return store.ShortID(id)
}

// getNetwork reads networks/ID; store.ErrNotFound if it is not there.
func (c *Client) getNetwork(ctx context.Context, id string) (*store.Network, int64, error) {
	resp, err := c.etcd.Get(ctx, c.keys.network(id))
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("global network %s: %w", store.ShortID(id), store.ErrNotFound)
	}
	var n store.Network
	if err := json.Unmarshal(resp.Kvs[0].Value, &n); err != nil {
		return nil, 0, fmt.Errorf("decode global network %s: %w", store.ShortID(id), err)
	}
	return &n, resp.Kvs[0].ModRevision, nil
}

// RemoveNetwork deletes global network id with its names, VNI, subnets and stale claims.
// It is refused while any host has an endpoint on it or a live host other than this one
// has an address claim on it (this host's own claims are stale: netmgr removes a network
// only when none of its sandboxes is on it). A network that is already gone is success.
func (c *Client) RemoveNetwork(ctx context.Context, id string) error {
	op := fmt.Sprintf("remove global network %s", store.ShortID(id))
	for attempt := 0; ; attempt++ {
		retry, err := c.removeOnce(ctx, id)
		if err != nil {
			return c.fail(op, err)
		}
		if !retry {
			c.noteErr(nil)
			return nil
		}
		if attempt+1 == createAttempts {
			return c.fail(op, fmt.Errorf("the network kept changing (%d attempts): %w", createAttempts, store.ErrConflict))
		}
		if err := sleep(ctx, time.Duration(5+rand.IntN(20*(attempt+1)))*time.Millisecond); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}

func (c *Client) removeOnce(ctx context.Context, id string) (retry bool, err error) {
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	k := c.keys
	read, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(k.network(id)),
		clientv3.OpGet(k.endpoints(id), clientv3.WithPrefix(), clientv3.WithLimit(1)),
		clientv3.OpGet(k.claims(id), clientv3.WithPrefix()),
		clientv3.OpGet(k.hosts(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return false, err
	}
	rev := read.Header.Revision
	nkvs := read.Responses[0].GetResponseRange().Kvs
	if len(nkvs) == 0 {
		return false, nil // gone already
	}
	var n store.Network
	if err := json.Unmarshal(nkvs[0].Value, &n); err != nil {
		return false, fmt.Errorf("decode global network: %w", err)
	}
	if kvs := read.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		var ep store.Endpoint
		json.Unmarshal(kvs[0].Value, &ep) // a broken record still blocks the remove
		return false, fmt.Errorf("network %s has active endpoints (host %s): %w", n.Name, ep.Host, store.ErrConflict)
	}
	live := map[string]bool{}
	for _, kv := range read.Responses[3].GetResponseRange().Kvs {
		live[strings.TrimPrefix(string(kv.Key), k.hosts())] = true
	}
	for _, kv := range read.Responses[2].GetResponseRange().Kvs {
		var cl claimValue
		if json.Unmarshal(kv.Value, &cl) != nil {
			continue // not a claim anyone can hold
		}
		if cl.Host != c.cfg.HostID && live[cl.Host] {
			ip := strings.TrimPrefix(string(kv.Key), k.claims(id))
			return false, fmt.Errorf("network %s has address %s claimed by host %s: %w", n.Name, ip, cl.Host, store.ErrConflict)
		}
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(k.network(id)), "=", nkvs[0].ModRevision),
		// No endpoint published and no address claimed since the read: a host joining
		// the network now either lands before (and the remove is refused) or finds the
		// network gone (its claim's compare on networks/ID fails).
		clientv3.Compare(clientv3.ModRevision(k.endpoints(id)), "<", rev+1).WithPrefix(),
		clientv3.Compare(clientv3.ModRevision(k.claims(id)), "<", rev+1).WithPrefix(),
	}
	dels := []clientv3.Op{
		clientv3.OpDelete(k.network(id)),
		clientv3.OpDelete(k.claims(id), clientv3.WithPrefix()),
	}
	// The index keys go only if they still point at this network.
	owned := []string{k.netname(strings.ToLower(n.Name))}
	if n.VNI != 0 {
		owned = append(owned, k.vni(n.VNI))
	}
	for _, s := range n.Subnets {
		owned = append(owned, k.subnet(s.Subnet))
	}
	gets := make([]clientv3.Op, len(owned))
	for i, key := range owned {
		gets[i] = clientv3.OpGet(key)
	}
	idx, err := c.etcd.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return false, err
	}
	for i, r := range idx.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 0 || string(kvs[0].Value) != id {
			continue
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(owned[i]), "=", kvs[0].ModRevision))
		dels = append(dels, clientv3.OpDelete(owned[i]))
	}
	resp, err := c.etcd.Txn(ctx).If(cmps...).Then(dels...).Commit()
	if err != nil {
		return false, err
	}
	return !resp.Succeeded, nil
}

// claimValue is the value of ipam/NETID/IP.
type claimValue struct {
	Host     string `json:"Host"`
	Endpoint string `json:"Endpoint"`
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
