package netmgr

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"berth/store"
)

// Pool is an address pool networks get their subnets from (dockerd's
// --default-address-pool base=CIDR,size=N): Base cut into subnets of prefix length Size.
type Pool struct {
	Base netip.Prefix // masked, IPv4
	Size int          // Base.Bits() <= Size <= 32
}

// defaultPools are Docker's default address pools for local networks: 172.17-31.0.0/16,
// then 192.168.0.0/16 cut into /20s.
func defaultPools() []Pool {
	var out []Pool
	for b := 17; b <= 31; b++ {
		out = append(out, Pool{netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(b), 0, 0}), 16), 16})
	}
	return append(out, Pool{netip.MustParsePrefix("192.168.0.0/16"), 20})
}

// pools are the configured pools, or Docker's default ones.
func (m *Manager) pools() []Pool {
	if len(m.cfg.Pools) > 0 {
		return m.cfg.Pools
	}
	return defaultPools()
}

func overlaps(p netip.Prefix, others []netip.Prefix) bool {
	for _, o := range others {
		if p.Overlaps(o) {
			return true
		}
	}
	return false
}

// usedPrefixes lists the subnets of every network in the snapshot but the configuration
// networks', which hold no addresses (Docker allocates nothing for them either).
func usedPrefixes(snap *store.Snapshot) []netip.Prefix {
	var used []netip.Prefix
	for _, n := range snap.Networks() {
		if n.ConfigOnly {
			continue
		}
		for _, s := range n.Subnets {
			used = append(used, s.Subnet)
		}
	}
	return used
}

// pickSubnet returns the first subnet of the pools, in order, that overlaps neither a
// network nor a route.
func (m *Manager) pickSubnet(used, routes []netip.Prefix) (netip.Prefix, error) {
	for _, pool := range m.pools() {
		// Each step skips one subnet: a /8 cut into /24s is 65,536 steps at most.
		for p := netip.PrefixFrom(pool.Base.Addr(), pool.Size); p.IsValid() && pool.Base.Contains(p.Addr()); p = nextPrefix(p) {
			if !overlaps(p, used) && !overlaps(p, routes) {
				return p, nil
			}
		}
	}
	// dockerd's words (20.10, asked with every default pool taken).
	return netip.Prefix{}, fmt.Errorf("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: %w", store.ErrConflict)
}

// nextPrefix is the prefix of p's length right after p; invalid past the address space.
func nextPrefix(p netip.Prefix) netip.Prefix {
	a := lastAddr(p).Next()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, p.Bits())
}

// ulaBase is Docker 28's IPv6 pool when no IPv6 default-address-pool is configured: a
// /48 of fd00::/8 whose 40-bit global ID is the first 64 bits of the SHA-256 of a stable
// host ID, masked to 40 bits (moby daemon/daemon.go, deriveULABaseNetwork). berth's stable
// ID is that of its predefined bridge network, made once with the state and kept by every
// restart, as dockerd's engine ID is.
func ulaBase(hostID string) netip.Prefix {
	sum := sha256.Sum256([]byte(hostID))
	gid := binary.BigEndian.Uint64(sum[:8]) & (1<<40 - 1)
	var b [16]byte
	b[0] = 0xfd
	for i := 0; i < 5; i++ {
		b[1+i] = byte(gid >> (8 * (4 - i)))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 48)
}

// pickSubnet6 returns the first /64 of the ULA /48 of hostID (ulaBase) that overlaps no
// used prefix, in order, as Docker 28 cuts its IPv6 pool.
func pickSubnet6(hostID string, used []netip.Prefix) (netip.Prefix, error) {
	base := ulaBase(hostID)
	for p := netip.PrefixFrom(base.Addr(), 64); base.Contains(p.Addr()); p = nextPrefix(p) {
		if !overlaps(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free IPv6 subnet left in %s: %w", base, store.ErrConflict)
}

// hostID is the ID ulaBase derives this host's IPv6 pool from: the predefined bridge
// network's, or "" before it exists.
func hostID(snap *store.Snapshot) string {
	if n, err := snap.NetworkByName(DefaultNetwork); err == nil && n.Predefined {
		return n.ID
	}
	return ""
}

// lastAddr returns the highest address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// reserved reports whether a is an address of sub that must never go to an endpoint:
// the network address (IPv6: the subnet-router anycast), the IPv4 broadcast and the gateway.
// The network's aux addresses are auxName's.
func reserved(sub store.Subnet, a netip.Addr) bool {
	if a == sub.Subnet.Addr() || a == sub.Gateway {
		return true
	}
	return a.Is4() && sub.Subnet.Bits() < 31 && a == lastAddr(sub.Subnet)
}

// auxName returns the --aux-address name of n that reserves a, if any.
func auxName(n *store.Network, a netip.Addr) (string, bool) {
	for name, x := range n.Aux {
		if x == a {
			return name, true
		}
	}
	return "", false
}

// holderError names who holds a taken address, as the issue asks.
func holderError(snap *store.Snapshot, field string, a netip.Addr, owner string) error {
	who := "another endpoint"
	if ep, err := snap.Endpoint(owner); err == nil {
		if ep.Remote() {
			who = "sandbox " + ep.SandboxName + " on host " + ep.Host
		} else if sb, err := snap.Sandbox(ep.SandboxID); err == nil {
			who = "sandbox " + sb.Name
		}
	}
	return invalid(field, a.String(), "address already in use by %s", who)
}

// subnetFor returns the subnet of n of the family of a (IPv4 or IPv6).
func subnetFor(n *store.Network, v6 bool) (store.Subnet, bool) {
	for _, s := range n.Subnets {
		if s.Subnet.Addr().Is6() == v6 {
			return s, true
		}
	}
	return store.Subnet{}, false
}

// allocate picks an address of the given family on network n that is free in snap; want,
// if valid, is a static address (--ip / --ip6). Dynamic addresses are the lowest free ones
// of the IP range. Nothing is recorded here: the endpoint's commit records the address, and
// the store's one-owner check there keeps it from being handed out twice, across restarts
// too. Addresses whose veth the reaper is still deleting are skipped; a static one waits
// for it.
func allocate(snap *store.Snapshot, n *store.Network, v6 bool, want netip.Addr, field string, q *reaper) (netip.Addr, error) {
	sub, ok := subnetFor(n, v6)
	if !ok {
		if want.IsValid() {
			// dockerd 28's words (moby daemon/container_operations.go,
			// validateEndpointIPAddress): a --ip on an IPv6-only network.
			return netip.Addr{}, invalid(field, want.String(), "no configured subnet contains IP address %s", want)
		}
		return netip.Addr{}, nil
	}
	if want.IsValid() {
		if !sub.Subnet.Contains(want) {
			return netip.Addr{}, invalid(field, want.String(), "not in subnet %s of network %s", sub.Subnet, n.Name)
		}
		if name, ok := auxName(n, want); ok {
			// dockerd's words for a --ip that is an aux address, and whose it is.
			return netip.Addr{}, invalid(field, want.String(), "Address already in use (aux-address %s)", name)
		}
		if reserved(sub, want) {
			return netip.Addr{}, invalid(field, want.String(), "reserved address of subnet %s (network, broadcast or gateway)", sub.Subnet)
		}
		if shimAddr(n, want) {
			return netip.Addr{}, invalid(field, want.String(), "address already in use by the host shim of network %s", n.Name)
		}
		if a, err := snap.Address(n.ID, want); err == nil {
			return netip.Addr{}, holderError(snap, field, want, a.Owner)
		}
		if q.holds(n.ID, want) {
			q.wait() // the reaper never takes a lock a caller of allocate holds
		}
		return want, nil
	}
	rng := sub.IPRange
	if !rng.IsValid() {
		rng = sub.Subnet
	}
	held := func(a netip.Addr) bool {
		_, aux := auxName(n, a)
		return aux || shimAddr(n, a) || q.holds(n.ID, a)
	}
	a, err := firstFree(snap, n.ID, sub, rng, held)
	if errors.Is(err, store.ErrConflict) {
		// Full but for addresses being released: worth the wait (tens of ms).
		q.wait()
		a, err = firstFree(snap, n.ID, sub, rng, held)
	}
	return a, err
}

// firstFree walks the range and the (sorted) allocations together, so the cost is the
// number of allocations below the first gap, never the size of the range. held addresses
// (veths being deleted) count as taken.
func firstFree(snap *store.Snapshot, netID string, sub store.Subnet, rng netip.Prefix, held func(netip.Addr) bool) (netip.Addr, error) {
	taken := snap.NetworkAddresses(netID)
	i := 0
	for a := rng.Addr(); rng.Contains(a); a = a.Next() {
		for i < len(taken) && taken[i].Addr.Less(a) {
			i++
		}
		if i < len(taken) && taken[i].Addr == a {
			continue
		}
		if reserved(sub, a) || held(a) {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %s of network %s: %w", rng, sub.Subnet, store.ErrConflict)
}

// macFromIPv4 derives the MAC Docker gives an endpoint: 02:42 then the four IPv4 bytes.
func macFromIPv4(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// bridgeMAC is a fixed locally administered MAC for a bridge, derived from the network ID,
// so the bridge never takes the MAC of a port (and never changes it when that port leaves).
func bridgeMAC(netID string) net.HardwareAddr {
	h := sha256.Sum256([]byte("bridge/" + netID))
	return net.HardwareAddr{0x02, 0x42, h[0], h[1], h[2], h[3]}
}
