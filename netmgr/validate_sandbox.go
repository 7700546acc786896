package netmgr

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"berth/api"
	"berth/store"
)

// SandboxSpec is a SandboxCreate whose fields have been checked one by one. What needs the
// store or the kernel (the name taken, the networks and the container: sandbox found, the
// host ports free, the netns to adopt a namespace nobody else has, the addresses free on
// their network) is checked by CreateSandbox.
type SandboxSpec struct {
	Name       string // or "": CreateSandbox picks one
	Hostname   string // or ""
	Domainname string // or ""
	Mode       string // store.ModeBridge, ModeNone, ModeHost or ModeContainer
	// Networks are the references of the networks to join, in order (ModeBridge only: at
	// least one, the default bridge if none was given).
	Networks  []string
	Container string       // ModeContainer: reference of the sandbox whose netns is shared
	Endpoint  EndpointSpec // on the first network; empty unless ModeBridge
	// DNS, DNSSearch, DNSOptions and ExtraHosts are checked and kept as given: the record
	// stores them as text, and the files are rendered from it.
	DNS        []string
	DNSSearch  []string
	DNSOptions []string
	ExtraHosts []string
	NetNS      string            // or "": the absolute path of a netns to adopt
	Labels     map[string]string // or nil
	Publish    []PublishSpec     // in the order given, one per port of a range; then -P's
	Expose     []store.Port      // Proto and Port of every exposed port once, published ones included
}

// EndpointSpec is what a caller may choose about one attachment (create or connect).
type EndpointSpec struct {
	Aliases []string
	IPv4    netip.Addr       // or invalid: allocated
	IPv6    netip.Addr       // or invalid: allocated
	MAC     net.HardwareAddr // or nil: derived from the IPv4 address or the endpoint ID
	Links   []store.Link     // legacy links, aliases unique (case-insensitive)
}

// ValidateSandboxCreate checks every field of req and returns them parsed, or the first
// invalid one.
func ValidateSandboxCreate(req api.SandboxCreate) (SandboxSpec, error) {
	s := SandboxSpec{Name: req.Name, Hostname: req.Hostname, Domainname: req.Domainname, Mode: store.ModeBridge,
		DNS: req.DNS, DNSSearch: req.DNSSearch, DNSOptions: req.DNSOptions, ExtraHosts: req.ExtraHosts, NetNS: req.NetNS}
	if s.Name != "" {
		if err := checkName("name", s.Name); err != nil {
			return s, err
		}
	}
	for _, f := range []struct{ field, v string }{{"hostname", s.Hostname}, {"domainname", s.Domainname}} {
		if f.v == "" {
			continue
		}
		if err := checkDNSName(f.field, f.v); err != nil {
			return s, err
		}
		if len(f.v) > maxUTSName {
			return s, invalid(f.field, f.v, "longer than %d characters (the kernel's limit)", maxUTSName)
		}
	}
	if err := checkDNSSettings(req); err != nil {
		return s, err
	}
	var err error
	if s.Endpoint, err = parseEndpoint(req.Aliases, req.IPv4, req.IPv6, req.MAC, req.Links); err != nil {
		return s, err
	}
	if s.Publish, s.Expose, err = parsePorts(req.Publish, req.Expose, req.PublishAll); err != nil {
		return s, err
	}
	for k, v := range req.Labels {
		if k == "" || strings.ContainsAny(k, "\n=") || strings.Contains(v, "\n") {
			return s, invalid("label", k+"="+v, "want KEY=VALUE on one line")
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	if s.NetNS != "" && !filepath.IsAbs(s.NetNS) {
		return s, invalid("netns", s.NetNS, "must be an absolute path")
	}
	return s, s.parseNetworks(req.Networks)
}

// parseNetworks reads --network: bridge networks, or one of none, host and container:NAME,
// which take none of the per-network flags.
func (s *SandboxSpec) parseNetworks(nets []string) error {
	if len(nets) == 0 {
		nets = []string{DefaultNetwork}
	}
	mode, arg, special := specialMode(nets[0])
	if !special {
		for _, ref := range nets {
			if _, _, special := specialMode(ref); special {
				return invalid("network", ref, "cannot be combined with other networks")
			}
		}
		s.Networks = nets
		return nil
	}
	if len(nets) > 1 {
		return invalid("network", nets[0], "cannot be combined with other networks")
	}
	e := s.Endpoint
	if len(e.Aliases) > 0 || e.IPv4.IsValid() || e.IPv6.IsValid() || e.MAC != nil || len(e.Links) > 0 {
		return invalid("network", nets[0], "--network-alias, --ip, --ip6, --mac-address and --link need a bridge network")
	}
	if len(s.Publish) > 0 {
		return invalid("publish", nets[0], "port publishing needs a bridge network")
	}
	if s.NetNS != "" {
		return invalid("netns", s.NetNS, "an adopted netns joins bridge networks only")
	}
	if mode == store.ModeContainer && (s.Hostname != "" || s.Domainname != "") {
		// As Docker: the names are the other sandbox's, whose UTS namespace is shared.
		return invalid("network", nets[0], "conflicting options: --hostname and --domainname cannot be used with container: networking")
	}
	s.Mode, s.Container = mode, arg
	return nil
}

// specialMode recognises none, host and container:NAME.
func specialMode(ref string) (mode, arg string, ok bool) {
	switch {
	case ref == NoneNetwork:
		return store.ModeNone, "", true
	case ref == HostNetwork:
		return store.ModeHost, "", true
	case strings.HasPrefix(ref, "container:"):
		return store.ModeContainer, strings.TrimPrefix(ref, "container:"), true
	}
	return "", "", false
}

func checkDNSSettings(req api.SandboxCreate) error {
	for _, d := range req.DNS {
		if _, err := parseAddr("dns", d); err != nil {
			return err
		}
	}
	for _, s := range req.DNSSearch {
		if err := checkSearch(s); err != nil {
			return err
		}
	}
	for _, o := range req.DNSOptions {
		if err := checkDNSOption(o); err != nil {
			return err
		}
	}
	for _, h := range req.ExtraHosts {
		if err := checkExtraHost(h); err != nil {
			return err
		}
	}
	return nil
}

// parseEndpoint checks the per-network flags shared by create and connect.
func parseEndpoint(aliases []string, ip4, ip6, mac string, links []string) (EndpointSpec, error) {
	var r EndpointSpec
	for _, a := range aliases {
		if err := checkDNSName("alias", a); err != nil {
			return r, err
		}
		r.Aliases = append(r.Aliases, a)
	}
	var err error
	if ip4 != "" {
		if r.IPv4, err = parseAddr("ip", ip4); err != nil {
			return r, err
		}
		if !r.IPv4.Is4() {
			return r, invalid("ip", ip4, "not an IPv4 address (use --ip6)")
		}
	}
	if ip6 != "" {
		if r.IPv6, err = parseAddr("ip6", ip6); err != nil {
			return r, err
		}
		if !r.IPv6.Is6() {
			return r, invalid("ip6", ip6, "not an IPv6 address (use --ip)")
		}
	}
	if mac != "" {
		if r.MAC, err = parseMAC("mac-address", mac); err != nil {
			return r, err
		}
	}
	seen := map[string]bool{}
	for _, l := range links {
		target, alias, err := parseLink(l)
		if err != nil {
			return r, err
		}
		if seen[strings.ToLower(alias)] {
			return r, invalid("link", l, "alias %q given twice", alias)
		}
		seen[strings.ToLower(alias)] = true
		r.Links = append(r.Links, store.Link{Target: target, Alias: alias})
	}
	return r, nil
}

// ConnectSpec is a NetworkConnect whose fields have been checked one by one; Connect
// resolves the references and checks the rest against the network.
type ConnectSpec struct {
	Network  string // reference
	Sandbox  string // reference
	Endpoint EndpointSpec
}

// ValidateNetworkConnect checks every field of req and returns them parsed, or the first
// invalid one.
func ValidateNetworkConnect(req api.NetworkConnect) (ConnectSpec, error) {
	ep, err := parseEndpoint(req.Aliases, req.IPv4, req.IPv6, "", req.Links)
	return ConnectSpec{Network: req.Network, Sandbox: req.Sandbox, Endpoint: ep}, err
}

// ValidateSandboxRename checks the new name of req.
func ValidateSandboxRename(req api.SandboxRename) error {
	return checkName("name", req.Name)
}
