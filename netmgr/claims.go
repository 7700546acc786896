package netmgr

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"berth/store"
)

// Addresses of global (overlay) networks are handed out by every host of the cluster, each
// from its own store, so each one is claimed in the cluster store before any kernel work:
// the cluster store's create-if-absent is what keeps two hosts from giving one address to
// two sandboxes. Local IPAM already skips the addresses of the other hosts' endpoints that
// the mirror has brought in; a claim refused anyway (the mirror lags, or the other host's
// create is still in progress) moves on to another address.

// maxClaimTries bounds the addresses one endpoint tries before its create fails: far more
// than a network that is not nearly full ever needs, few enough that a full one fails fast.
const maxClaimTries = 64

// claim is one address claimed for an endpoint being planned, for the undo.
type claim struct {
	netID string
	addr  netip.Addr
	epID  string
}

// claimAddrs claims in the cluster store the addresses of the planned endpoint ep on the
// global network n, replacing a refused dynamic address with a random free one of the range
// (and the MAC derived from it, unless r gives one). r is ep's request: a refused static
// address is the caller's error. It returns the claims made; on error none is left.
func (m *Manager) claimAddrs(ctx context.Context, snap *store.Snapshot, n *store.Network, ep *store.Endpoint, r EndpointSpec) ([]claim, error) {
	if !n.Global() {
		return nil, nil
	}
	if m.cfg.Cluster == nil {
		return nil, fmt.Errorf("network %s is global and the daemon has no --cluster-store: %w", n.Name, ErrClusterUnreachable)
	}
	var made []claim
	for _, fam := range []struct {
		addr  *netip.Addr
		want  netip.Addr
		field string
	}{{&ep.IPv4, r.IPv4, "ip"}, {&ep.IPv6, r.IPv6, "ip6"}} {
		if !fam.addr.IsValid() {
			continue
		}
		a, err := m.claimOne(ctx, snap, n, ep.ID, *fam.addr, fam.want.IsValid(), fam.field)
		if err != nil {
			m.releaseClaims(ctx, made)
			return nil, err
		}
		if fam.addr == &ep.IPv4 && a != ep.IPv4 && r.MAC == nil {
			ep.MAC = macFromIPv4(a).String()
		}
		*fam.addr = a
		made = append(made, claim{n.ID, a, ep.ID})
	}
	return made, nil
}

// claimOne claims a (or, when it is refused and not static, another free address) for
// endpoint epID and returns the address claimed.
func (m *Manager) claimOne(ctx context.Context, snap *store.Snapshot, n *store.Network, epID string, a netip.Addr, static bool, field string) (netip.Addr, error) {
	refused := map[netip.Addr]bool{}
	for try := 0; ; try++ {
		err := m.cfg.Cluster.ClaimAddr(ctx, n.ID, a, epID)
		if err == nil {
			return a, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			// The client went away: the change's error says so, whatever the store made of it.
			return netip.Addr{}, fmt.Errorf("claim address %s on network %s: %w: %w", a, n.Name, cerr, err)
		}
		if !errors.Is(err, store.ErrConflict) {
			return netip.Addr{}, fmt.Errorf("claim address %s on network %s: %w", a, n.Name, err)
		}
		if static {
			return netip.Addr{}, invalid(field, a.String(), "in use by %s", clusterHolder(err))
		}
		refused[a] = true
		if try+1 == maxClaimTries {
			return netip.Addr{}, fmt.Errorf("claim an address on network %s: %d addresses tried, all held by other hosts: %w",
				n.Name, maxClaimTries, store.ErrConflict)
		}
		var ok bool
		if a, ok = m.randomFree(snap, n, a.Is6(), refused); !ok {
			return netip.Addr{}, fmt.Errorf("no free address left on network %s: the others are held by other hosts: %w",
				n.Name, store.ErrConflict)
		}
	}
}

// clusterHolder words who holds an address, from the cluster store's refusal: "host B"
// when it says "held by host B", else its own words without the sentinel's.
func clusterHolder(err error) string {
	s := strings.TrimSuffix(err.Error(), ": "+store.ErrConflict.Error())
	if i := strings.LastIndex(s, "host "); i >= 0 {
		return s[i:]
	}
	return "another host (" + s + ")"
}

// randomFree returns a free address of n's range of the family (not recorded here, not
// reserved, not held by the reaper, not in refused), starting the walk at a random place:
// the other hosts pick the lowest free addresses too, so the next one up is the likeliest
// to be taken.
func (m *Manager) randomFree(snap *store.Snapshot, n *store.Network, v6 bool, refused map[netip.Addr]bool) (netip.Addr, bool) {
	sub, ok := subnetFor(n, v6)
	if !ok {
		return netip.Addr{}, false
	}
	rng := sub.IPRange
	if !rng.IsValid() {
		rng = sub.Subnet
	}
	hostBits := rng.Addr().BitLen() - rng.Bits()
	size := uint64(1) << min(hostBits, 62)
	start := rand.Uint64N(size)
	// Walk at most 1<<16 addresses: a range so big has free ones near any start.
	for i := uint64(0); i < min(size, 1<<16); i++ {
		a := addrAt(rng.Addr(), (start+i)%size)
		if _, aux := auxName(n, a); aux || refused[a] || reserved(sub, a) || m.reap.holds(n.ID, a) {
			continue
		}
		if _, err := snap.Address(n.ID, a); err == nil {
			continue
		}
		return a, true
	}
	return netip.Addr{}, false
}

// addrAt returns base plus off.
func addrAt(base netip.Addr, off uint64) netip.Addr {
	b := base.As16()
	for i := 15; i >= 0 && off > 0; i-- {
		sum := uint64(b[i]) + off&0xff
		b[i] = byte(sum)
		off = off>>8 + sum>>8
	}
	a := netip.AddrFrom16(b)
	if base.Is4() {
		return a.Unmap()
	}
	return a
}

// releaseClaims drops claims made by a change that is undone or finished removing the
// endpoints. A failed release is logged, not returned: the change itself is done, and
// ReconcileClaims drops the claim later. It runs whatever ctx says: the undo of a cancelled
// create must still release.
func (m *Manager) releaseClaims(ctx context.Context, cs []claim) {
	if len(cs) == 0 || m.cfg.Cluster == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, c := range cs {
		if err := m.cfg.Cluster.ReleaseAddr(ctx, c.netID, c.addr, c.epID); err != nil {
			m.cfg.Log.Warn("release address claim", "network", store.ShortID(c.netID), "addr", c.addr,
				"endpoint", store.ShortID(c.epID), "err", err)
		}
	}
}

// claimsOf are the claims the endpoints eps hold on global networks (in snap).
func claimsOf(snap *store.Snapshot, eps []*store.Endpoint) []claim {
	var out []claim
	for _, ep := range eps {
		n, err := snap.Network(ep.NetworkID)
		if ep.Remote() || err != nil || !n.Global() {
			continue
		}
		for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
			if a.IsValid() {
				out = append(out, claim{n.ID, a, ep.ID})
			}
		}
	}
	return out
}

// ReconcileClaims makes this host's address claims in the cluster store match its store:
// a claim no local endpoint holds (a create killed mid-way, a release that failed) is
// released, and an address of a local endpoint on a global network that is not claimed (the
// claim lost with its network, re-created in the cluster store) is claimed again. The
// daemon calls it after each (re)registration of the host. An address another host has
// claimed meanwhile is logged: two sandboxes now share it, and one must be re-created.
func (m *Manager) ReconcileClaims(ctx context.Context) error {
	if m.cfg.Cluster == nil {
		return nil
	}
	m.mu.Lock() // no create holds claims without records meanwhile
	defer m.mu.Unlock()
	have, err := m.cfg.Cluster.Claims(ctx)
	if err != nil {
		return fmt.Errorf("reconcile address claims: %w", err)
	}
	snap := m.cfg.Store.Snapshot()
	held := map[claim]bool{}
	var errs []error
	for _, c := range have {
		k := claim{c.NetworkID, c.Addr, c.EndpointID}
		held[k] = true
		if a, err := snap.Address(c.NetworkID, c.Addr); err == nil && a.Owner == c.EndpointID {
			if ep, err := snap.Endpoint(c.EndpointID); err == nil && !ep.Remote() {
				continue
			}
		}
		m.cfg.Log.Info("stale address claim released", "network", store.ShortID(c.NetworkID), "addr", c.Addr,
			"endpoint", store.ShortID(c.EndpointID))
		if err := m.cfg.Cluster.ReleaseAddr(ctx, c.NetworkID, c.Addr, c.EndpointID); err != nil {
			errs = append(errs, fmt.Errorf("release stale claim %s: %w", c.Addr, err))
		}
	}
	for _, n := range snap.Networks() {
		if !n.Global() {
			continue
		}
		for _, c := range claimsOf(snap, snap.NetworkEndpoints(n.ID)) {
			if held[c] {
				continue
			}
			m.cfg.Log.Warn("address claim missing: claimed again", "network", n.Name, "addr", c.addr,
				"endpoint", store.ShortID(c.epID))
			err := m.cfg.Cluster.ClaimAddr(ctx, c.netID, c.addr, c.epID)
			switch {
			case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
				m.cfg.Log.Error("address of a local endpoint cannot be claimed", "network", n.Name, "addr", c.addr,
					"endpoint", store.ShortID(c.epID), "err", err)
			case err != nil:
				errs = append(errs, fmt.Errorf("claim %s on network %s again: %w", c.addr, n.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
