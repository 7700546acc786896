package netmgr

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"berth/store"
)

// fakeCluster is an in-memory cluster store shared by the Managers of a test, each
// through its own fakeClusterHost view (its host ID), as etcd is shared by the daemons.
type fakeCluster struct {
	mu       sync.Mutex
	networks map[string]*store.Network // ID -> record
	claims   map[string]fakeClaim      // NETID/IP -> claim
	// endpoints are the published endpoints (as the publisher in package cluster puts
	// them): ID -> record with Host set. Tests put them with publish.
	endpoints map[string]*store.Endpoint
	nextVNI   int
	down      bool   // every call fails with ErrClusterUnreachable
	failOn    string // method name that fails once
}

type fakeClaim struct{ host, endpoint string }

func newFakeCluster() *fakeCluster {
	return &fakeCluster{networks: map[string]*store.Network{}, claims: map[string]fakeClaim{},
		endpoints: map[string]*store.Endpoint{}, nextVNI: 4096}
}

// host returns host id's view of the cluster, with underlay address addr.
func (c *fakeCluster) host(id, addr string) *fakeClusterHost {
	return &fakeClusterHost{c: c, id: id, addr: netip.MustParseAddr(addr)}
}

// update returns the full RemoteUpdate host id's mirror would apply now.
func (c *fakeCluster) update(id string) RemoteUpdate {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := RemoteUpdate{Full: true}
	for _, n := range c.networks {
		u.Networks = append(u.Networks, n.Copy())
	}
	for _, ep := range c.endpoints {
		if ep.Host != id {
			u.Endpoints = append(u.Endpoints, ep.Copy())
		}
	}
	sort.Slice(u.Networks, func(i, j int) bool { return u.Networks[i].ID < u.Networks[j].ID })
	sort.Slice(u.Endpoints, func(i, j int) bool { return u.Endpoints[i].ID < u.Endpoints[j].ID })
	return u
}

// publish records the endpoints of host h's sandboxes on global networks, as the
// publisher does from h's store.
func (c *fakeCluster) publish(h *fakeClusterHost, snap *store.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ep := range c.endpoints {
		if ep.Host == h.id {
			delete(c.endpoints, id)
		}
	}
	for _, n := range snap.Networks() {
		if !n.Global() {
			continue
		}
		for _, ep := range snap.NetworkEndpoints(n.ID) {
			sb, err := snap.Sandbox(ep.SandboxID)
			if ep.Remote() || err != nil || sb.State != store.StateReady {
				continue
			}
			p := ep.Copy()
			p.Host, p.HostAddr, p.SandboxName = h.id, h.addr, sb.Name
			p.HostVeth, p.Links, p.Seq = "", nil, 0
			c.endpoints[p.ID] = p
		}
	}
}

// claimed lists every claim as "NETID/IP host endpoint", sorted.
func (c *fakeCluster) claimed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, v := range c.claims {
		out = append(out, k+" "+v.host+" "+v.endpoint)
	}
	sort.Strings(out)
	return out
}

func (c *fakeCluster) check(op string) error {
	if c.down {
		return fmt.Errorf("%s: %w", op, ErrClusterUnreachable)
	}
	if c.failOn == op {
		c.failOn = ""
		return fmt.Errorf("fake %s failure: %w", op, ErrClusterUnreachable)
	}
	return nil
}

// fakeClusterHost implements Cluster for one host.
type fakeClusterHost struct {
	c    *fakeCluster
	id   string
	addr netip.Addr
}

func (h *fakeClusterHost) HostID() string        { return h.id }
func (h *fakeClusterHost) Advertise() netip.Addr { return h.addr }

func (h *fakeClusterHost) CreateNetwork(ctx context.Context, n *store.Network) (int, error) {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check("CreateNetwork"); err != nil {
		return 0, err
	}
	for _, o := range c.networks {
		if strings.EqualFold(o.Name, n.Name) {
			return 0, fmt.Errorf("global network name %s is taken: %w", n.Name, store.ErrConflict)
		}
		for _, s := range o.Subnets {
			for _, t := range n.Subnets {
				if s.Subnet == t.Subnet {
					return 0, fmt.Errorf("subnet %s is taken by global network %s: %w", s.Subnet, o.Name, store.ErrConflict)
				}
			}
		}
	}
	r := n.Copy()
	r.VNI = c.nextVNI
	c.nextVNI++
	c.networks[r.ID] = r
	return r.VNI, nil
}

func (h *fakeClusterHost) RemoveNetwork(ctx context.Context, id string) error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check("RemoveNetwork"); err != nil {
		return err
	}
	for _, ep := range c.endpoints {
		if ep.NetworkID == id {
			return fmt.Errorf("network has an endpoint on host %s: %w", ep.Host, store.ErrConflict)
		}
	}
	for k, v := range c.claims {
		if strings.HasPrefix(k, id+"/") {
			if v.host != h.id {
				return fmt.Errorf("network has an address claimed by host %s: %w", v.host, store.ErrConflict)
			}
		}
	}
	for k := range c.claims {
		if strings.HasPrefix(k, id+"/") {
			delete(c.claims, k)
		}
	}
	delete(c.networks, id)
	return nil
}

func (h *fakeClusterHost) ClaimAddr(ctx context.Context, netID string, a netip.Addr, epID string) error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check("ClaimAddr"); err != nil {
		return err
	}
	if _, ok := c.networks[netID]; !ok {
		return fmt.Errorf("claim %s: global network %s: %w", a, store.ShortID(netID), store.ErrNotFound)
	}
	k := netID + "/" + a.String()
	if v, ok := c.claims[k]; ok && v != (fakeClaim{h.id, epID}) {
		return fmt.Errorf("claim %s: held by host %s: %w", a, v.host, store.ErrConflict)
	}
	c.claims[k] = fakeClaim{h.id, epID}
	return nil
}

func (h *fakeClusterHost) ReleaseAddr(ctx context.Context, netID string, a netip.Addr, epID string) error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check("ReleaseAddr"); err != nil {
		return err
	}
	k := netID + "/" + a.String()
	if c.claims[k] == (fakeClaim{h.id, epID}) {
		delete(c.claims, k)
	}
	return nil
}

func (h *fakeClusterHost) Claims(ctx context.Context) ([]Claim, error) {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check("Claims"); err != nil {
		return nil, err
	}
	var out []Claim
	for k, v := range c.claims {
		if v.host != h.id {
			continue
		}
		i := strings.LastIndex(k, "/")
		out = append(out, Claim{NetworkID: k[:i], Addr: netip.MustParseAddr(k[i+1:]), EndpointID: v.endpoint})
	}
	return out, nil
}

var _ Cluster = (*fakeClusterHost)(nil)
