package main

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"berth/api"
)

// The addresses of berth's per-sandbox DNS server: 127.0.0.11, or for a sandbox with no
// IPv4 address on any network the IPv6 one its resolv.conf names (resolver.Nameserver).
const (
	embeddedDNS  = "127.0.0.11"
	embeddedDNS6 = "fd62:6572:7468::11"
)

// defaultNetwork is berth's predefined network: like Docker's default bridge it has no
// embedded DNS (names only through /etc/hosts), so its result carries no nameserver.
const defaultNetwork = "bridge"

// buildResult describes sandbox sb's endpoint on network nw as a CNI result: the interface
// inside netns, its addresses with gateways, a default route per family unless the network
// is internal (berth adds none there either), and berth's DNS server.
func buildResult(netns string, sb *api.Sandbox, nw *api.Network) (*types100.Result, error) {
	es, ok := sb.Networks[nw.Name]
	if !ok {
		return nil, fmt.Errorf("sandbox %s has no endpoint on network %s", sb.Name, nw.Name)
	}
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{{Name: es.InterfaceName, Mac: es.MacAddress, Sandbox: netns}},
	}
	for _, a := range []struct {
		addr, gw string
		plen     int
		bits     int
		any      string
	}{
		{es.IPAddress, es.Gateway, es.IPPrefixLen, 32, "0.0.0.0/0"},
		{es.GlobalIPv6Address, es.IPv6Gateway, es.GlobalIPv6PrefixLen, 128, "::/0"},
	} {
		if a.addr == "" {
			continue
		}
		ip := net.ParseIP(a.addr)
		if ip == nil || a.plen <= 0 || a.plen > a.bits {
			return nil, fmt.Errorf("sandbox %s: bad address %s/%d on network %s", sb.Name, a.addr, a.plen, nw.Name)
		}
		if a.bits == 32 {
			ip = ip.To4()
		}
		gw := net.ParseIP(a.gw) // nil when the network has no gateway for the family
		res.IPs = append(res.IPs, &types100.IPConfig{
			Interface: types100.Int(0),
			Address:   net.IPNet{IP: ip, Mask: net.CIDRMask(a.plen, a.bits)},
			Gateway:   gw,
		})
		if gw != nil && !nw.Internal {
			_, dst, _ := net.ParseCIDR(a.any)
			res.Routes = append(res.Routes, &types.Route{Dst: *dst, GW: gw})
		}
	}
	if nw.Name != defaultNetwork {
		res.DNS = types.DNS{Nameservers: []string{nameserver(sb)}}
	}
	return res, nil
}

// nameserver is the embedded DNS address sb's resolv.conf names, as resolver.Nameserver
// decides it: 127.0.0.11 if any of its endpoints has an IPv4 address, else the IPv6 one.
func nameserver(sb *api.Sandbox) string {
	for _, es := range sb.Networks {
		if es.IPAddress != "" {
			return embeddedDNS
		}
	}
	return embeddedDNS6
}
