package netmgr

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"berth/api"
	"berth/resolver"
	"berth/store"
)

// NetworkSpec is a NetworkCreate whose fields have been checked one by one. What needs the
// store (the name taken, a subnet overlapping another network's, the bridge name in use,
// the --config-from network) and what needs all subnets, some of them picked (where each
// gateway, IP range and aux address goes), is checked by CreateNetwork.
type NetworkSpec struct {
	Name       string
	Overlay    bool          // Driver overlay: a global network, in the cluster store; else bridge
	Sub        *SubIfOptions // Driver macvlan or ipvlan (macvlan.go), or nil
	Internal   bool
	IPv4       bool // true unless --ipv4=false (an IPv6-only network)
	IPv6       bool
	Attachable bool
	ConfigOnly bool                  // a configuration network: recorded, no bridge
	ConfigFrom string                // the configuration network's name, or ""
	Subnets    []Given[netip.Prefix] // at most one per family; IPv6 only with IPv6, IPv4 only with IPv4
	Gateways   []Given[netip.Addr]
	IPRanges   []Given[netip.Prefix] // each goes to the subnet containing it
	Aux        []AuxAddress          // sorted by name; each goes to the subnet containing it
	Bridge     string                // OptBridgeName, or "": br- and the ID
	MTU        int                   // OptMTU, or 0: the kernel's default
	ICC        bool                  // OptICC; true unless it says false
	Options    map[string]string     // every option as given, these included; never nil
	Labels     map[string]string     // never nil
}

// AuxAddress is one --aux-address NAME=IP.
type AuxAddress struct {
	Name string
	Addr Given[netip.Addr] // Text is NAME=IP, as the errors show it
}

// ValidateNetworkCreate checks every field of req and returns them parsed, or the first
// invalid one.
func ValidateNetworkCreate(req api.NetworkCreate) (NetworkSpec, error) {
	s := NetworkSpec{Name: req.Name, Internal: req.Internal, IPv4: req.IPv4 == nil || *req.IPv4, IPv6: req.IPv6,
		Attachable: req.Attachable, ConfigOnly: req.ConfigOnly, ConfigFrom: req.ConfigFrom, ICC: true,
		Options: map[string]string{}, Labels: map[string]string{}}
	if err := checkName("name", req.Name); err != nil {
		return s, err
	}
	if !s.IPv4 && !s.IPv6 {
		// moby daemon/libnetwork/drivers/bridge/bridge_linux.go, CreateNetwork (Docker 28).
		return s, invalid("ipv4", "false", "IPv4 or IPv6 must be enabled")
	}
	switch req.Driver {
	case "", store.DriverBridge:
	case store.DriverOverlay:
		// Whether a cluster store is configured is the Manager's to check (CreateNetwork).
		s.Overlay = true
		if req.IPv6 {
			return s, invalid("ipv6", "true", "overlay networks are IPv4-only")
		}
		if req.ConfigOnly || req.ConfigFrom != "" {
			return s, invalid("driver", req.Driver, "configuration networks are local: only the bridge driver takes --config-only and --config-from")
		}
	case store.DriverMacvlan, store.DriverIpvlan:
	default:
		return s, invalid("driver", req.Driver, "only the bridge, overlay, macvlan and ipvlan drivers are supported")
	}
	if err := checkConfigFlags(req); err != nil {
		return s, err
	}
	parse := s.parseOptions
	if (req.Driver == store.DriverMacvlan || req.Driver == store.DriverIpvlan) && !req.ConfigOnly {
		// A configuration network (driver null, as dockerd makes it) keeps its options
		// unread: the network made --config-from it checks them as its own.
		parse = func(o map[string]string) error { return s.parseSubIfOptions(req.Driver, o) }
	}
	if err := parse(req.Options); err != nil {
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
	if err := s.parseIPAM(req); err != nil {
		return s, err
	}
	return s, nil
}

// checkConfigFlags applies Docker's rules for --config-only and --config-from (the texts of
// dockerd 20.10; moby daemon/libnetwork/network.go, validateConfiguration), in its order:
// a request with two faults gets dockerd's first. What a --config-from network may not set
// is what it takes from the configuration network.
func checkConfigFlags(req api.NetworkCreate) error {
	if req.ConfigOnly && (req.Internal || req.Attachable) {
		return invalid("config-only", "true", "configuration network can only contain network specific fields. "+
			"Network operator fields like [ ingress | internal | attachable | scope ] are not supported.")
	}
	if req.ConfigFrom == "" {
		return nil
	}
	if req.ConfigOnly {
		return invalid("config-from", req.ConfigFrom, "a configuration network cannot depend on another configuration network")
	}
	if err := checkName("config-from", req.ConfigFrom); err != nil {
		return err
	}
	if len(req.Subnets) > 0 || len(req.Gateways) > 0 || len(req.IPRanges) > 0 || req.IPRange != "" ||
		len(req.AuxAddresses) > 0 || req.IPv6 || req.IPv4 != nil && !*req.IPv4 || len(req.Labels) > 0 {
		return invalid("config-from", req.ConfigFrom, "user specified configurations are not supported if the network depends on a configuration network")
	}
	if len(req.Options) > 0 {
		return invalid("config-from", req.ConfigFrom, "network driver options are not supported if the network depends on a configuration network")
	}
	return nil
}

// parseIPAM parses the subnets, gateways, IP ranges and aux addresses of req.
func (s *NetworkSpec) parseIPAM(req api.NetworkCreate) error {
	for _, text := range req.Subnets {
		p, err := parseSubnet(text, s.IPv4, s.IPv6)
		if err != nil {
			return err
		}
		for _, o := range s.Subnets {
			if o.Value.Addr().Is6() == p.Addr().Is6() {
				return invalid("subnet", text, "only one subnet per address family")
			}
		}
		if err := notEmbeddedDNS("subnet", text, p); err != nil {
			return err
		}
		s.Subnets = append(s.Subnets, Given[netip.Prefix]{p, text})
	}
	for _, text := range req.Gateways {
		a, err := parseAddr("gateway", text)
		if err != nil {
			return err
		}
		if err := notEmbeddedDNS("gateway", text, netip.PrefixFrom(a, a.BitLen())); err != nil {
			return err
		}
		s.Gateways = append(s.Gateways, Given[netip.Addr]{a, text})
	}
	ranges := req.IPRanges
	if req.IPRange != "" && !slices.Contains(ranges, req.IPRange) {
		ranges = append(slices.Clip(ranges), req.IPRange)
	}
	for _, text := range ranges {
		p, err := parsePrefix("ip-range", text)
		if err != nil {
			return err
		}
		if err := notEmbeddedDNS("ip-range", text, p); err != nil {
			return err
		}
		s.IPRanges = append(s.IPRanges, Given[netip.Prefix]{p, text})
	}
	for _, name := range slices.Sorted(maps.Keys(req.AuxAddresses)) {
		text := name + "=" + req.AuxAddresses[name]
		a, err := netip.ParseAddr(req.AuxAddresses[name])
		if err != nil || a.Zone() != "" {
			return invalid("aux-address", text, "not an IP address")
		}
		if err := notEmbeddedDNS("aux-address", text, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())); err != nil {
			return err
		}
		s.Aux = append(s.Aux, AuxAddress{Name: name, Addr: Given[netip.Addr]{a.Unmap(), text}})
	}
	return nil
}

// notEmbeddedDNS refuses a subnet, range or address that contains resolver.EmbeddedNS6:
// every sandbox has it on lo, so an endpoint or gateway there would be unreachable, and
// the NAT would take its port 53.
func notEmbeddedDNS(field, text string, p netip.Prefix) error {
	if p.Contains(resolver.EmbeddedNS6) {
		return invalid(field, text, "overlaps berth's embedded DNS address %s", resolver.EmbeddedNS6)
	}
	return nil
}

// parseSubnet reads one --subnet: a prefix that leaves room for a gateway and endpoints.
func parseSubnet(text string, ipv4, ipv6 bool) (netip.Prefix, error) {
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
	if p.Addr().Is4() && !ipv4 {
		return p, invalid("subnet", text, "IPv4 subnet on a network with --ipv4=false")
	}
	return p, nil
}

// parseMTU reads the MTU option (key k) of any driver, in Docker's words.
func parseMTU(field, k, v string) (int, error) {
	mtu, err := strconv.Atoi(v)
	if err != nil || mtu < 68 || mtu > 65535 {
		return 0, invalid(field, k+"="+v, "MTU must be an integer between 68 and 65535")
	}
	return mtu, nil
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
			mtu, err := parseMTU(field, k, v)
			if err != nil {
				return err
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
