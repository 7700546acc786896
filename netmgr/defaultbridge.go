package netmgr

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"time"

	"berth/store"
)

// BridgeDefaults is the daemon's configuration of the default bridge network, dockerd's
// flags of the same names. The zero value is Docker's default: a subnet from the pools,
// IPv4 only, the kernel's MTU, masquerade on.
type BridgeDefaults struct {
	BIP         netip.Prefix // --bip: the gateway address with the subnet's prefix length; zero: a subnet from the pools
	FixedCIDR   netip.Prefix // --fixed-cidr: where dynamic addresses come from, inside the subnet; zero: all of it
	IPv6        bool         // --ipv6: the default bridge gets an IPv6 subnet too
	FixedCIDRv6 netip.Prefix // --fixed-cidr-v6: that IPv6 subnet; zero: a ULA /64 derived from the network ID
	MTU         int          // --mtu: of the bridge and its sandboxes' veths; 0: the kernel default
	NoIPMasq    bool         // --ip-masq=false: no masquerade of the default bridge's traffic
}

// ensurePredefined records bridge, none and host on the first start, and applies the
// daemon's default bridge configuration at every start.
func (m *Manager) ensurePredefined() error {
	snap := m.cfg.Store.Snapshot()
	var add []*store.Network
	bridge, remake, err := m.defaultBridge(snap)
	if err != nil {
		return err
	}
	if bridge != nil {
		add = append(add, bridge)
	}
	for name, driver := range map[string]string{NoneNetwork: store.DriverNull, HostNetwork: store.DriverHost} {
		if _, err := snap.NetworkByName(name); errors.Is(err, store.ErrNotFound) {
			add = append(add, &store.Network{ID: newID(), Name: name, Driver: driver, Predefined: true,
				Created: time.Now().UTC(), Options: map[string]string{}, Labels: map[string]string{}})
		}
	}
	if len(add) == 0 {
		return nil
	}
	if remake {
		// New addresses or MTU on a bridge no sandbox is on: the bridge goes, and Restore
		// makes it again from the record (an MTU once set would otherwise stay after --mtu
		// is dropped). Kernel first, record second: a start that fails or is killed in
		// between finds the old record and re-makes the bridge again.
		if err := m.cfg.Kernel.DeleteLink(bridge.Bridge); err != nil {
			return fmt.Errorf("delete bridge %s to make it again: %w", bridge.Bridge, err)
		}
	}
	err = m.cfg.Store.Update(func(tx *store.Tx) error {
		for _, n := range add {
			if err := tx.PutNetwork(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if remake {
		m.cfg.Log.Info("default bridge reconfigured", "network", DefaultNetwork, "subnets", bridge.Subnets, "mtu", bridge.MTU)
	}
	return nil
}

// defaultBridge returns the default bridge's record as the configuration wants it, or nil
// if the recorded one is that already; remake says its bridge must be made again. As in
// dockerd, which re-creates the default bridge at every start unless containers are still
// running (then "There are old running containers, the network config will not take
// affect"), a changed subnet, IP range, IPv6 or MTU applies only while no sandbox is on
// the bridge; otherwise the old one is kept with a warning, so no sandbox is ever cut off.
// The ICC and masquerade switches are firewall rules only and apply at every start.
func (m *Manager) defaultBridge(snap *store.Snapshot) (n *store.Network, remake bool, err error) {
	old, err := snap.NetworkByName(DefaultNetwork)
	switch {
	case errors.Is(err, store.ErrNotFound):
		old = nil
	case err != nil:
		return nil, false, err
	}
	want := &store.Network{ID: newID(), Name: DefaultNetwork, Driver: store.DriverBridge, Bridge: DefaultBridge,
		Predefined: true, Created: time.Now().UTC(), Options: map[string]string{}, Labels: map[string]string{}}
	if old != nil {
		want = old.Copy()
	}
	c := m.cfg.DefaultBridge
	if want.Subnets, err = m.defaultBridgeSubnets(snap, old, want.ID); err != nil {
		return nil, false, err
	}
	want.IPv6, want.MTU = c.IPv6, c.MTU
	if old != nil && !sameAddressing(old, want) {
		if eps := snap.NetworkEndpoints(old.ID); len(eps) > 0 {
			m.cfg.Log.Warn("sandboxes are on the default bridge: the new bip, fixed-cidr, ipv6 or mtu takes effect once none is",
				"network", DefaultNetwork, "sandboxes", len(eps), "subnets", old.Subnets, "mtu", old.MTU)
			want.Subnets, want.IPv6, want.MTU = old.Subnets, old.IPv6, old.MTU
		} else {
			remake = true
		}
	}
	want.ICC = !m.cfg.NoDefaultICC
	want.Options[OptBridgeName] = DefaultBridge
	want.Options[OptICC] = strconv.FormatBool(want.ICC)
	want.Options[OptMasquerade] = strconv.FormatBool(!c.NoIPMasq)
	delete(want.Options, OptMTU)
	if want.MTU > 0 {
		want.Options[OptMTU] = strconv.Itoa(want.MTU)
	}
	if old != nil && reflect.DeepEqual(old, want) {
		return nil, false, nil
	}
	return want, remake, nil
}

// sameAddressing reports whether a and b have the same subnets, IPv6 switch and MTU: what
// changes the bridge and its sandboxes' addresses and veths.
func sameAddressing(a, b *store.Network) bool {
	return reflect.DeepEqual(a.Subnets, b.Subnets) && a.IPv6 == b.IPv6 && a.MTU == b.MTU
}

// defaultBridgeSubnets places the default bridge's subnets. Without --bip the recorded
// IPv4 subnet stays, as dockerd keeps the address docker0 has, unless
// --default-address-pool is given and the subnet is not in those pools (dockerd then
// deletes docker0 and picks from the pools).
func (m *Manager) defaultBridgeSubnets(snap *store.Snapshot, old *store.Network, id string) ([]store.Subnet, error) {
	c := m.cfg.DefaultBridge
	var used []netip.Prefix
	for _, n := range snap.Networks() {
		// Its own subnets are for it to keep; a configuration network's hold no
		// addresses (usedPrefixes).
		if old != nil && n.ID == old.ID || n.ConfigOnly {
			continue
		}
		for _, s := range n.Subnets {
			used = append(used, s.Subnet)
		}
	}
	var v4, v6 store.Subnet
	if old != nil {
		v4, _ = subnetFor(old, false)
		v6, _ = subnetFor(old, true)
		v4.IPRange, v6.IPRange = netip.Prefix{}, netip.Prefix{}
	}
	switch {
	case c.BIP.IsValid():
		v4 = store.Subnet{Subnet: c.BIP.Masked(), Gateway: c.BIP.Addr()}
		if overlaps(v4.Subnet, used) {
			return nil, invalid("bip", c.BIP.String(), "overlaps the subnet of network %s", overlapHolder(snap, v4.Subnet))
		}
	case v4.Subnet.IsValid() && m.inPools(v4.Subnet):
	default:
		routes, err := m.cfg.Kernel.RouteDsts()
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		p, err := m.pickSubnet(used, routes)
		if err != nil {
			return nil, err
		}
		v4 = store.Subnet{Subnet: p, Gateway: p.Addr().Next()}
	}
	if r := c.FixedCIDR; r.IsValid() {
		if !v4.Subnet.Contains(r.Addr()) || r.Bits() < v4.Subnet.Bits() {
			return nil, invalid("fixed-cidr", r.String(), "not inside the default bridge's subnet %s", v4.Subnet)
		}
		v4.IPRange = r.Masked()
	}
	subs := []store.Subnet{v4}
	if !c.IPv6 {
		return subs, nil
	}
	switch {
	case c.FixedCIDRv6.IsValid():
		p := c.FixedCIDRv6.Masked()
		v6 = store.Subnet{Subnet: p, Gateway: p.Addr().Next()}
		if overlaps(p, used) {
			return nil, invalid("fixed-cidr-v6", c.FixedCIDRv6.String(), "overlaps the subnet of network %s", overlapHolder(snap, p))
		}
	case v6.Subnet.IsValid():
	default:
		p, err := pickSubnet6(id, used)
		if err != nil {
			return nil, err
		}
		v6 = store.Subnet{Subnet: p, Gateway: p.Addr().Next()}
	}
	return append(subs, v6), nil
}

// inPools reports whether a recorded default bridge subnet may stay: always with Docker's
// default pools, else only inside one of the configured ones.
func (m *Manager) inPools(p netip.Prefix) bool {
	if len(m.cfg.Pools) == 0 {
		return true
	}
	for _, pool := range m.cfg.Pools {
		if pool.Base.Contains(p.Addr()) && p.Bits() >= pool.Base.Bits() {
			return true
		}
	}
	return false
}
