package netmgr

import (
	"maps"
	"net/netip"
	"strconv"

	"berth/api"
	"berth/store"
)

// NetworkSpec is a NetworkCreate whose fields have been checked one by one. What needs the
// store (the name taken, a subnet overlapping another network's, the bridge name in use)
// and what needs all subnets, some of them picked (where each gateway and the IP range
// go), is checked by CreateNetwork.
type NetworkSpec struct {
	Name     string
	Overlay  bool // Driver overlay: a global network, in the cluster store; else bridge
	Internal bool
	IPv6     bool
	Subnets  []Given[netip.Prefix] // at most one per family; IPv6 only with IPv6
	Gateways []Given[netip.Addr]
	IPRange  Given[netip.Prefix] // Value invalid when not given
	Bridge   string              // OptBridgeName, or "": br- and the ID
	MTU      int                 // OptMTU, or 0: the kernel's default
	ICC      bool                // OptICC; true unless it says false
	Options  map[string]string   // every option as given, these included; never nil
	Labels   map[string]string   // never nil
}

// ValidateNetworkCreate checks every field of req and returns them parsed, or the first
// invalid one.
func ValidateNetworkCreate(req api.NetworkCreate) (NetworkSpec, error) {
	s := NetworkSpec{Name: req.Name, Internal: req.Internal, IPv6: req.IPv6, ICC: true,
		Options: map[string]string{}, Labels: map[string]string{}}
	if err := checkName("name", req.Name); err != nil {
		return s, err
	}
	switch req.Driver {
	case "", store.DriverBridge:
	case store.DriverOverlay:
		// Whether a cluster store is configured is the Manager's to check (CreateNetwork).
		s.Overlay = true
		if req.IPv6 {
			return s, invalid("ipv6", "true", "overlay networks are IPv4-only")
		}
	default:
		return s, invalid("driver", req.Driver, "only the bridge driver is supported")
	}
	if err := s.parseOptions(req.Options); err != nil {
		return s, err
	}
	if _, ok := req.Options[OptBridgeName]; ok && s.Overlay {
		// Every host names the bridge of a global network alike, after its ID.
		return s, invalid("opt", OptBridgeName+"="+req.Options[OptBridgeName], "not an option of the overlay driver")
	}
	for k, v := range req.Labels {
		if k == "" {
			return s, invalid("label", k+"="+v, "empty key")
		}
	}
	maps.Copy(s.Labels, req.Labels)
	for _, text := range req.Subnets {
		p, err := parseSubnet(text, req.IPv6)
		if err != nil {
			return s, err
		}
		for _, o := range s.Subnets {
			if o.Value.Addr().Is6() == p.Addr().Is6() {
				return s, invalid("subnet", text, "only one subnet per address family")
			}
		}
		s.Subnets = append(s.Subnets, Given[netip.Prefix]{p, text})
	}
	for _, text := range req.Gateways {
		a, err := parseAddr("gateway", text)
		if err != nil {
			return s, err
		}
		s.Gateways = append(s.Gateways, Given[netip.Addr]{a, text})
	}
	if req.IPRange != "" {
		p, err := parsePrefix("ip-range", req.IPRange)
		if err != nil {
			return s, err
		}
		s.IPRange = Given[netip.Prefix]{p, req.IPRange}
	}
	return s, nil
}

// parseSubnet reads one --subnet: a prefix that leaves room for a gateway and endpoints.
func parseSubnet(text string, ipv6 bool) (netip.Prefix, error) {
	p, err := parsePrefix("subnet", text)
	if err != nil {
		return p, err
	}
	if p.Addr().Is4() && p.Bits() > 30 {
		return p, invalid("subnet", text, "too small: a /%d leaves no address for endpoints (at most /30)", p.Bits())
	}
	if p.Addr().Is6() && p.Bits() > 126 {
		return p, invalid("subnet", text, "too small (at most /126)")
	}
	if p.Addr().Is6() && !ipv6 {
		return p, invalid("subnet", text, "IPv6 subnet needs --ipv6")
	}
	return p, nil
}

// parseOptions checks the driver options that change behaviour and keeps all of them.
func (s *NetworkSpec) parseOptions(opts map[string]string) error {
	const field = "opt"
	for k, v := range opts {
		switch k {
		case OptBridgeName:
			if err := checkIfName(field, v); err != nil {
				return invalid(field, k+"="+v, "%s", err.(*InvalidError).Reason)
			}
			s.Bridge = v
		case OptMTU:
			mtu, err := strconv.Atoi(v)
			if err != nil || mtu < 68 || mtu > 65535 {
				return invalid(field, k+"="+v, "MTU must be an integer between 68 and 65535")
			}
			s.MTU = mtu
		case OptICC:
			b, err := parseBool(field, v)
			if err != nil {
				return invalid(field, k+"="+v, "want true or false")
			}
			s.ICC = b
		case OptMasquerade:
			if _, err := parseBool(field, v); err != nil {
				return invalid(field, k+"="+v, "want true or false")
			}
		case OptHostBinding:
			// The default host address of published ports: a typo would publish on every
			// address instead (ports.go ignores what does not parse), so refuse it here.
			if _, err := netip.ParseAddr(v); err != nil {
				return invalid(field, k+"="+v, "not an IP address")
			}
		case "":
			return invalid(field, "="+v, "empty key")
		}
		s.Options[k] = v
	}
	return nil
}
