package netmgr

import (
	"fmt"
	"net"
	"net/netip"
)

// Kernel is what netmgr needs from the kernel. The real one is netmgr/kernel.Linux; unit
// tests use a fake so IPAM and bookkeeping run without root. Every method is idempotent.
type Kernel interface {
	// EnsureBridge creates the bridge if missing and makes its MAC, MTU and addresses
	// (gateway/prefix of each subnet) match spec, and sets it up.
	EnsureBridge(spec BridgeSpec) error
	// DeleteLink removes a link of the daemon's netns by name; absent is not an error.
	DeleteLink(name string) error
	// LinkNames lists the link names of the daemon's netns (for the orphan sweep).
	LinkNames() ([]string, error)
	// RouteDsts lists the destination prefixes of the daemon netns' routes (for subnet picking).
	RouteDsts() ([]netip.Prefix, error)

	// CreateNetNS makes a new netns with lo up and pins it at path.
	CreateNetNS(path string) error
	// PinNetNS bind-mounts an existing netns file (e.g. /proc/self/ns/net) at path.
	PinNetNS(path, from string) error
	// DeleteNetNS unpins path (unmount + remove); absent is not an error.
	DeleteNetNS(path string) error
	// NetNSExists reports whether path is a pinned netns.
	NetNSExists(path string) bool
	// CreateUTSNS makes a UTS namespace with hostname and domainname and pins it at path.
	CreateUTSNS(path, hostname, domainname string) error
	// DeleteUTSNS unpins a UTS namespace; absent is not an error.
	DeleteUTSNS(path string) error

	// AddVeth creates the veth pair of an endpoint (replacing a stale one of the same host name).
	AddVeth(spec VethSpec) error
	// SetDefaultRoutes makes the default routes inside the netns at nsPath go via gw4/gw6 on
	// ifName; a zero gateway removes that family's default route.
	SetDefaultRoutes(nsPath, ifName4 string, gw4 netip.Addr, ifName6 string, gw6 netip.Addr) error

	// EnsureVxlan creates an overlay network's VXLAN device if missing (learning off,
	// proxy ARP on), sets its MTU to the underlay's minus the encapsulation, puts it on
	// spec.Bridge, sets it up and returns that MTU.
	EnsureVxlan(spec VxlanSpec) (mtu int, err error)
	// DeleteVxlan removes a VXLAN device with its FDB and neighbour entries; absent is not an error.
	DeleteVxlan(name string) error
	// AddVxlanPeer programs the FDB and neighbour entries of a remote endpoint on dev.
	AddVxlanPeer(dev string, p VxlanPeer) error
	// DeleteVxlanPeer removes them; absent entries are not an error.
	DeleteVxlanPeer(dev string, p VxlanPeer) error
	// SyncVxlanPeers makes dev's entries exactly those of want.
	SyncVxlanPeers(dev string, want []VxlanPeer) error
}

// VxlanPort is the IANA VXLAN port, which Docker and flannel use too.
const VxlanPort = 4789

// VxlanSpec describes one overlay network's VXLAN device on this host.
type VxlanSpec struct {
	Name   string     // at most 15 bytes; see VxlanName
	VNI    int        // 1..2^24-1, the same on every host of the network
	Local  netip.Addr // this host's underlay address: the outer source, and where its MTU comes from
	Port   int        // UDP destination port; 0 means VxlanPort
	Bridge string     // the network's bridge, which the device joins
}

// VxlanName is the device name for an overlay network, built like Docker's ("vx-" and
// the VNI in hex, then the start of the network ID): 15 bytes, the kernel's limit.
func VxlanName(vni int, networkID string) string {
	if len(networkID) > 5 {
		networkID = networkID[:5]
	}
	return fmt.Sprintf("vx-%06x-%s", vni, networkID)
}

// VxlanPeer is a remote endpoint of an overlay network, as the local VXLAN device needs
// it: its MAC, its overlay addresses and the underlay address of the host it runs on.
type VxlanPeer struct {
	MAC   net.HardwareAddr
	Addrs []netip.Addr
	Host  netip.Addr
}

// BridgeSpec describes a bridge device.
type BridgeSpec struct {
	Name  string
	MAC   net.HardwareAddr
	MTU   int            // 0: leave the kernel default
	Addrs []netip.Prefix // gateway address with the subnet's prefix length
}

// VethSpec describes an endpoint's veth pair.
type VethSpec struct {
	NetNSPath string // sandbox netns
	HostName  string // host end, enslaved to Bridge, up
	Bridge    string
	IfName    string           // sandbox end: eth0, eth1, ...
	MAC       net.HardwareAddr // sandbox end
	MTU       int              // 0: kernel default
	Addrs     []netip.Prefix   // sandbox end addresses (IPv6 without DAD)
}
