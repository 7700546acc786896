package daemon

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"berth/api"
	"berth/netmgr"
	"berth/store"
)

// This file turns store records into the API's docker-shaped views. It reads one snapshot
// per request, so a view never mixes two states; references resolve with netmgr's
// NetworkByRef and SandboxByRef, the same rules mutations use.

// bridgeNameOpt is the docker option naming the bridge device; inspect always shows it.
const bridgeNameOpt = "com.docker.network.bridge.name"

// vxlanIDOpt is the option Docker's overlay networks show their VNI in.
const vxlanIDOpt = "com.docker.network.driver.overlay.vxlanid_list"

// networkView is `docker network inspect` of n. local is this host's peer entry for a
// global network (its cluster host ID and underlay address), or zero.
func networkView(snap *store.Snapshot, n *store.Network, local api.NetworkPeer) api.Network {
	scope := store.ScopeLocal
	if n.Global() {
		scope = store.ScopeGlobal
	}
	v := api.Network{
		Name:       n.Name,
		ID:         n.ID,
		Created:    n.Created,
		Scope:      scope,
		Driver:     n.Driver,
		EnableIPv4: (n.Bridged() || n.OnParent() || n.ConfigOnly) && !n.NoIPv4,
		EnableIPv6: n.IPv6,
		IPAM:       api.IPAM{Driver: "default", Options: map[string]string{}, Config: []api.IPAMConfig{}},
		Internal:   n.Internal,
		Attachable: n.Attachable,
		ConfigFrom: api.ConfigReference{Network: n.ConfigFrom},
		ConfigOnly: n.ConfigOnly,
		Containers: map[string]api.NetworkContainer{},
		Options:    copyOrEmpty(n.Options),
		Labels:     copyOrEmpty(n.Labels),
	}
	// Shown even when netmgr picked the name, so users can find the device with `ip link`.
	if n.Bridge != "" {
		v.Options[bridgeNameOpt] = n.Bridge
	}
	for _, s := range n.Subnets {
		c := api.IPAMConfig{Subnet: s.Subnet.String()}
		if s.Gateway.IsValid() {
			c.Gateway = s.Gateway.String()
		}
		if s.IPRange.IsValid() {
			c.IPRange = s.IPRange.String()
		}
		for name, a := range n.Aux {
			if s.Subnet.Contains(a) {
				if c.AuxAddresses == nil {
					c.AuxAddresses = map[string]string{}
				}
				c.AuxAddresses[name] = a.String()
			}
		}
		v.IPAM.Config = append(v.IPAM.Config, c)
	}
	if n.Global() {
		v.Options[vxlanIDOpt] = fmt.Sprint(n.VNI)
		v.Peers = networkPeers(snap, n, local)
	}
	for _, ep := range snap.NetworkEndpoints(n.ID) {
		sb, err := snap.Sandbox(ep.SandboxID)
		if err != nil {
			// Another host's endpoint (in Peers), or one of a sandbox being removed in
			// this very snapshot: skip.
			continue
		}
		v.Containers[sb.ID] = api.NetworkContainer{
			Name:        sb.Name,
			EndpointID:  ep.ID,
			MacAddress:  ep.MAC,
			IPv4Address: withPrefix(n, ep.IPv4),
			IPv6Address: withPrefix(n, ep.IPv6),
		}
	}
	return v
}

// networkPeers lists the hosts with an endpoint on global network n: this one (local)
// first when it has one, then the others by name.
func networkPeers(snap *store.Snapshot, n *store.Network, local api.NetworkPeer) []api.NetworkPeer {
	var others []api.NetworkPeer
	here := false
	for _, ep := range snap.NetworkEndpoints(n.ID) {
		switch {
		case !ep.Remote():
			here = true
		case !slices.ContainsFunc(others, func(p api.NetworkPeer) bool { return p.Name == ep.Host }):
			others = append(others, api.NetworkPeer{Name: ep.Host, IP: ep.HostAddr.String()})
		}
	}
	slices.SortFunc(others, func(a, b api.NetworkPeer) int { return strings.Compare(a.Name, b.Name) })
	if here && local.Name != "" {
		return append([]api.NetworkPeer{local}, others...)
	}
	return others
}

// sandboxView is `docker inspect` of sb, flattened to what a netns has.
func sandboxView(snap *store.Snapshot, sb *store.Sandbox) api.Sandbox {
	// The files `ip netns exec` and `berth exec` bind-mount; exec finds them through here.
	dir := filepath.Join(filesDir, sb.Name)
	v := api.Sandbox{
		ID:             sb.ID,
		Name:           sb.Name,
		Created:        sb.Created,
		State:          sb.State,
		Hostname:       sb.Hostname,
		Domainname:     sb.Domainname,
		UTSPath:        sb.UTSPath,
		NetNSPath:      sb.NetNSPath,
		ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		HostsPath:      filepath.Join(dir, "hosts"),
		DNS:            nonNil(sb.DNS),
		DNSSearch:      nonNil(sb.DNSSearch),
		DNSOptions:     nonNil(sb.DNSOptions),
		ExtraHosts:     nonNil(sb.ExtraHosts),
		Networks:       map[string]api.EndpointSettings{},
		Ports:          portsView(snap, sb),
		Labels:         copyOrEmpty(sb.Labels),
		NetNSAdopted:   sb.Adopted,
		ExposedPorts:   map[string]struct{}{},
		Files:          map[string]api.SandboxFile{},
	}
	for _, f := range netmgr.SandboxFileStatus(snap, filesDir, sb) {
		v.Files[f.Name] = api.SandboxFile{Path: f.Path, Modified: f.Modified}
	}
	for k := range v.Ports {
		v.ExposedPorts[k] = struct{}{}
	}
	var first string
	for _, ep := range snap.SandboxEndpoints(sb.ID) {
		n, err := snap.Network(ep.NetworkID)
		if err != nil {
			continue
		}
		if first == "" {
			first = n.Name
		}
		v.Networks[n.Name] = endpointView(n, ep)
	}
	v.NetworkMode = networkMode(snap, sb, first)
	return v
}

// portsView is docker's NetworkSettings.Ports: "PORT/PROTO" -> host bindings; a port only
// exposed maps to null, as Docker shows it ("7000/tcp":null).
func portsView(snap *store.Snapshot, sb *store.Sandbox) map[string][]api.PortBinding {
	out := map[string][]api.PortBinding{}
	for _, p := range sb.Expose {
		out[fmt.Sprintf("%d/%s", p.Port, p.Proto)] = nil
	}
	// The host sockets the daemon holds: 0.0.0.0 and :: for a port without a host IP.
	for _, p := range netmgr.PortBindings(snap, sb) {
		k := fmt.Sprintf("%d/%s", p.Port, p.Proto)
		out[k] = append(out[k], api.PortBinding{HostIP: p.HostIP.String(), HostPort: fmt.Sprint(p.HostPort)})
	}
	return out
}

// networkMode is docker's HostConfig.NetworkMode: the mode, or for bridge mode the name of
// the first network (which is "bridge" for the default network).
func networkMode(snap *store.Snapshot, sb *store.Sandbox, firstNet string) string {
	switch sb.Mode {
	case store.ModeNone, store.ModeHost:
		return sb.Mode
	case store.ModeContainer:
		if other, err := snap.Sandbox(sb.Container); err == nil {
			return "container:" + other.Name
		}
		return "container:" + sb.Container
	}
	if firstNet == "" {
		return store.ModeBridge
	}
	return firstNet
}

// endpointView is one entry of NetworkSettings.Networks.
func endpointView(n *store.Network, ep *store.Endpoint) api.EndpointSettings {
	es := api.EndpointSettings{
		NetworkID:     n.ID,
		EndpointID:    ep.ID,
		MacAddress:    ep.MAC,
		Aliases:       nonNil(ep.Aliases),
		DNSNames:      nonNil(ep.DNSNames),
		Links:         []string{},
		InterfaceName: ep.IfName,
	}
	if s, ok := subnetOf(n, ep.IPv4); ok {
		es.IPAddress, es.IPPrefixLen = ep.IPv4.String(), s.Subnet.Bits()
		es.Gateway = addrString(s.Gateway)
	}
	if s, ok := subnetOf(n, ep.IPv6); ok {
		es.GlobalIPv6Address, es.GlobalIPv6PrefixLen = ep.IPv6.String(), s.Subnet.Bits()
		es.IPv6Gateway = addrString(s.Gateway)
	}
	// docker shows links as "target:alias", alias defaulting to the target's name.
	for _, l := range ep.Links {
		alias := l.Alias
		if alias == "" {
			alias = l.Target
		}
		es.Links = append(es.Links, l.Target+":"+alias)
	}
	return es
}

// subnetOf returns the subnet of n that holds a; false for the zero address.
func subnetOf(n *store.Network, a netip.Addr) (store.Subnet, bool) {
	if !a.IsValid() {
		return store.Subnet{}, false
	}
	for _, s := range n.Subnets {
		if s.Subnet.Contains(a) {
			return s, true
		}
	}
	// Not in any subnet (should not happen): show the host route rather than hide the address.
	return store.Subnet{Subnet: netip.PrefixFrom(a, a.BitLen())}, true
}

// withPrefix is "a.b.c.d/len" as network inspect shows addresses, or "" for none.
func withPrefix(n *store.Network, a netip.Addr) string {
	s, ok := subnetOf(n, a)
	if !ok {
		return ""
	}
	return netip.PrefixFrom(a, s.Subnet.Bits()).String()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// nonNil makes JSON show [] rather than null, as docker does.
func nonNil(s []string) []string {
	return append([]string{}, s...)
}

// copyOrEmpty copies m so views never share a record's map, and JSON shows {} for none.
func copyOrEmpty(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
