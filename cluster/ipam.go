package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"berth/netmgr"
	"berth/store"
)

// ClaimAddr claims address a of global network netID for this host's endpoint epID: one
// transaction that checks the network exists and the address is free. Claiming again for
// the same endpoint is success.
func (c *Client) ClaimAddr(ctx context.Context, netID string, a netip.Addr, epID string) error {
	op := fmt.Sprintf("claim %s on global network %s", a, store.ShortID(netID))
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	k := c.keys
	key := k.claim(netID, a.String())
	mine := claimValue{Host: c.cfg.HostID, Endpoint: epID}
	val, err := json.Marshal(mine)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.etcd.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(k.network(netID)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
	).Then(
		clientv3.OpPut(key, string(val)),
	).Else(
		clientv3.OpGet(k.network(netID), clientv3.WithKeysOnly()),
		clientv3.OpGet(key),
	).Commit()
	if err != nil {
		return c.fail(op, err)
	}
	c.noteErr(nil)
	if resp.Succeeded {
		return nil
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return fmt.Errorf("%s: global network: %w", op, store.ErrNotFound)
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		// Released between the compare and the read: the caller tries again (netmgr
		// picks another address, or this one again).
		return fmt.Errorf("%s: address changed hands meanwhile: %w", op, store.ErrConflict)
	}
	var held claimValue
	if err := json.Unmarshal(kvs[0].Value, &held); err == nil && held == mine {
		return nil
	}
	return fmt.Errorf("%s: held by endpoint %s of host %s: %w", op, store.ShortID(held.Endpoint), held.Host, store.ErrConflict)
}

// ReleaseAddr drops this host's claim on a if endpoint epID still holds it.
func (c *Client) ReleaseAddr(ctx context.Context, netID string, a netip.Addr, epID string) error {
	op := fmt.Sprintf("release %s on global network %s", a, store.ShortID(netID))
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	key := c.keys.claim(netID, a.String())
	resp, err := c.etcd.Get(ctx, key)
	if err != nil {
		return c.fail(op, err)
	}
	if len(resp.Kvs) == 0 {
		c.noteErr(nil)
		return nil
	}
	var held claimValue
	if err := json.Unmarshal(resp.Kvs[0].Value, &held); err != nil || held != (claimValue{c.cfg.HostID, epID}) {
		c.noteErr(nil)
		return nil // someone else's (or not a claim): not ours to drop
	}
	// Delete only the claim just read: if it changed since, it is no longer ours.
	if _, err := c.etcd.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision),
	).Then(clientv3.OpDelete(key)).Commit(); err != nil {
		return c.fail(op, err)
	}
	c.noteErr(nil)
	return nil
}

// Claims lists this host's address claims on every global network.
func (c *Client) Claims(ctx context.Context) ([]netmgr.Claim, error) {
	ctx, cancel := c.reqCtx(ctx)
	defer cancel()
	k := c.keys
	resp, err := c.etcd.Get(ctx, k.allClaims(), clientv3.WithPrefix())
	if err != nil {
		return nil, c.fail("list address claims", err)
	}
	c.noteErr(nil)
	var out []netmgr.Claim
	for _, kv := range resp.Kvs {
		var held claimValue
		if json.Unmarshal(kv.Value, &held) != nil || held.Host != c.cfg.HostID {
			continue
		}
		netID, ip, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), k.allClaims()), "/")
		a, err := netip.ParseAddr(ip)
		if !ok || err != nil {
			continue
		}
		out = append(out, netmgr.Claim{NetworkID: netID, Addr: a, EndpointID: held.Endpoint})
	}
	return out, nil
}
