package netmgr

// A new network's addresses: the subnets asked for, checked against the other networks',
// or picked from the pools, with gateways, IP ranges and aux addresses placed in them; and
// the spec a --config-from network takes from its configuration network.

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"berth/api"
	"berth/store"
)

// configFromSpec is the spec of req (a --config-from network, which sets none of these
// itself) with the subnets, gateways, ranges, aux addresses, families, options and labels
// of its configuration network, as Docker's applyConfigurationTo copies them.
func configFromSpec(snap *store.Snapshot, req api.NetworkCreate) (NetworkSpec, error) {
	cfg, err := snap.NetworkByName(req.ConfigFrom)
	if err != nil || !cfg.ConfigOnly {
		return NetworkSpec{}, fmt.Errorf("configuration network %q does not exist: %w", req.ConfigFrom, store.ErrNotFound)
	}
	ipv4 := !cfg.NoIPv4
	r := api.NetworkCreate{Name: req.Name, Driver: req.Driver, Internal: req.Internal, Attachable: req.Attachable,
		IPv4: &ipv4, IPv6: cfg.IPv6, Options: cfg.Options, Labels: cfg.Labels, AuxAddresses: map[string]string{}}
	for _, s := range cfg.Subnets {
		r.Subnets = append(r.Subnets, s.Subnet.String())
		if s.Gateway.IsValid() {
			r.Gateways = append(r.Gateways, s.Gateway.String())
		}
		if s.IPRange.IsValid() {
			r.IPRanges = append(r.IPRanges, s.IPRange.String())
		}
	}
	for name, a := range cfg.Aux {
		r.AuxAddresses[name] = a.String()
	}
	spec, err := ValidateNetworkCreate(r)
	spec.ConfigFrom = cfg.Name
	return spec, err
}

// buildSubnets checks the subnets asked for against the other networks', picks the others
// (one per enabled family) and places the gateways, IP ranges and aux addresses. A
// configuration network keeps what was given: it takes no addresses until a network is
// created from it, as in Docker.
func (m *Manager) buildSubnets(snap *store.Snapshot, n *store.Network, spec NetworkSpec) ([]store.Subnet, error) {
	used := usedPrefixes(snap)
	var subs []store.Subnet
	for _, s := range spec.Subnets {
		if !n.ConfigOnly && overlaps(s.Value, used) {
			return nil, invalid("subnet", s.Text, "overlaps the subnet of network %s", overlapHolder(snap, s.Value))
		}
		subs = append(subs, store.Subnet{Subnet: s.Value})
	}
	if spec.IPv4 && !n.ConfigOnly && !hasFamily(subs, false) {
		routes, err := m.cfg.Kernel.RouteDsts()
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		pick := m.pickSubnet
		if n.Global() {
			pick = pickOverlaySubnet
		}
		p, err := pick(used, routes)
		if err != nil {
			return nil, err
		}
		subs = append(subs, store.Subnet{Subnet: p})
	}
	if spec.IPv6 && !n.ConfigOnly && !hasFamily(subs, true) {
		p, err := pickSubnet6(hostID(snap), used)
		if err != nil {
			return nil, err
		}
		subs = append(subs, store.Subnet{Subnet: p})
	}
	// IPv4 first, as the record and inspect list them.
	slices.SortStableFunc(subs, func(a, b store.Subnet) int {
		return cmp.Compare(a.Subnet.Addr().BitLen(), b.Subnet.Addr().BitLen())
	})
	if err := setGateways(subs, spec.Gateways, !n.ConfigOnly); err != nil {
		return nil, err
	}
	if err := setIPRanges(subs, spec.IPRanges); err != nil {
		return nil, err
	}
	var err error
	if n.Aux, err = setAux(subs, spec.Aux, !n.ConfigOnly); err != nil {
		return nil, err
	}
	return subs, nil
}

func overlapHolder(snap *store.Snapshot, p netip.Prefix) string {
	for _, n := range snap.Networks() {
		if n.ConfigOnly {
			continue
		}
		for _, s := range n.Subnets {
			if s.Subnet.Overlaps(p) {
				return n.Name
			}
		}
	}
	return "?"
}

func hasFamily(subs []store.Subnet, v6 bool) bool {
	for _, s := range subs {
		if s.Subnet.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

// setGateways places each --gateway in the subnet that contains it; if dflt, the others
// get the first address of their subnet, as Docker does.
func setGateways(subs []store.Subnet, gws []Given[netip.Addr], dflt bool) error {
	for _, g := range gws {
		a := g.Value
		placed := false
		for i := range subs {
			if subs[i].Subnet.Contains(a) {
				if subs[i].Gateway.IsValid() {
					return invalid("gateway", g.Text, "subnet %s has a gateway already", subs[i].Subnet)
				}
				if a == subs[i].Subnet.Addr() || (a.Is4() && a == lastAddr(subs[i].Subnet)) {
					return invalid("gateway", g.Text, "network or broadcast address of %s", subs[i].Subnet)
				}
				subs[i].Gateway = a
				placed = true
			}
		}
		if !placed {
			return invalid("gateway", g.Text, "not in any subnet of the network")
		}
	}
	for i := range subs {
		if dflt && !subs[i].Gateway.IsValid() {
			subs[i].Gateway = subs[i].Subnet.Addr().Next()
		}
	}
	return nil
}

// setIPRanges gives each --ip-range to the subnet containing its first address, at most
// one per subnet: docker network create's rule and words (docker/cli
// cli/command/network/create.go, createIPAMConfig), and dockerd 28's check that the range
// is no bigger than its subnet (moby daemon/network.go, validateIPRange).
func setIPRanges(subs []store.Subnet, ranges []Given[netip.Prefix]) error {
	for _, r := range ranges {
		p := r.Value
		i := slices.IndexFunc(subs, func(s store.Subnet) bool { return s.Subnet.Contains(p.Addr()) })
		if i < 0 {
			return invalid("ip-range", r.Text, "no matching subnet for range %s", r.Text)
		}
		s := &subs[i]
		if s.IPRange.IsValid() {
			return invalid("ip-range", r.Text, "cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r.Text, s.IPRange, s.Subnet)
		}
		if p.Bits() < s.Subnet.Bits() {
			return invalid("ip-range", r.Text, "CIDR block is bigger than its parent subnet %s", s.Subnet)
		}
		s.IPRange = p
	}
	return nil
}

// setAux checks that each --aux-address is in a subnet (docker network create's rule and
// words) and, if alloc, not an address the subnet reserves already: dockerd refuses the
// network address, the gateway, the IPv4 broadcast and a second name for one address with
// "failed to allocate secondary ip address (NAME:IP): Address already in use". A
// configuration network allocates nothing (!alloc): dockerd takes those, and refuses them
// when a network is made --config-from it. It returns the network's Aux, or nil.
func setAux(subs []store.Subnet, aux []AuxAddress, alloc bool) (map[string]netip.Addr, error) {
	var out map[string]netip.Addr
	for _, x := range aux {
		a := x.Addr.Value
		i := slices.IndexFunc(subs, func(s store.Subnet) bool { return s.Subnet.Contains(a) })
		if i < 0 {
			return nil, invalid("aux-address", x.Addr.Text, "no matching subnet for aux-address %s", a)
		}
		if alloc && (reserved(subs[i], a) || slices.Contains(slices.Collect(maps.Values(out)), a)) {
			return nil, invalid("aux-address", x.Addr.Text, "failed to allocate secondary ip address (%s:%s): Address already in use", x.Name, a)
		}
		if out == nil {
			out = map[string]netip.Addr{}
		}
		out[x.Name] = a
	}
	return out, nil
}
