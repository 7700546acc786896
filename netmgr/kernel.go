package netmgr

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
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

	// The macvlan and ipvlan drivers put a sandbox's interface directly on a parent link
	// of the daemon's netns instead of on a bridge. A parent berth made is removed with
	// DeleteLink (for an internal parent that removes both veth ends).

	// EnsureParent makes spec's parent exist and be up. An existing link is used as it is
	// (created false) if it is an Ethernet device, and is an error naming it otherwise. A
	// missing VLAN sub-interface (on an existing Link) or internal parent is made (created
	// true). A missing plain parent is an error naming it ("parent interface eth9 not
	// found"). A missing 8021q module is an error that says so.
	EnsureParent(spec ParentSpec) (created bool, err error)
	// AddSubIf creates the sandbox's interface on spec.Parent straight into the netns at
	// spec.NetNSPath under SubIfTempName (it is never in the daemon's netns), renames it to
	// spec.IfName and sets its MAC, MTU and addresses and up; a stale link named IfName
	// there is replaced, so it may be repeated like AddVeth.
	AddSubIf(spec SubIfSpec) error
	// DeleteLinkIn removes link ifName inside the netns at nsPath; absent is not an
	// error, nor is a netns that is gone.
	DeleteLinkIn(nsPath, ifName string) error
	// EnsureShim creates the shim if missing (macvlan mode bridge), sets its MAC, address
	// and up, and makes its routes exactly spec.Routes (adds missing, removes others).
	EnsureShim(spec ShimSpec) error
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

// ParentSpec is the parent link of a macvlan or ipvlan network.
type ParentSpec struct {
	Name string // the link: "eth0", "eth0.20", or berth's own internal parent
	Link string // a VLAN's lower device ("eth0" for "eth0.20"); "" otherwise
	VLAN int    // its 802.1Q ID (20); 0: no VLAN
	// Internal: no -o parent, so berth makes the parent itself as one end of a veth pair
	// (this kernel has no dummy module); the peer end is PeerName(Name).
	Internal bool
}

// SubIfSpec is a sandbox's macvlan or ipvlan interface.
type SubIfSpec struct {
	NetNSPath string
	Parent    string           // in the daemon's netns
	Kind      string           // "macvlan" or "ipvlan"
	Mode      string           // macvlan: bridge|private|vepa|passthru; ipvlan: l2|l3|l3s
	Flag      string           // ipvlan only: bridge|private|vepa ("" = bridge)
	IfName    string           // eth0, eth1, ... inside the netns
	MAC       net.HardwareAddr // macvlan only: nil for ipvlan, ignored for passthru (both have the parent's)
	MTU       int              // 0: the parent's
	Addrs     []netip.Prefix   // IPv6 without DAD, as for veths
}

// ShimSpec is the host's own macvlan on a network's parent (-o berth.host_shim=true): the
// kernel does not let a macvlan child reach its parent's address, so the host talks to
// its sandboxes through a sibling macvlan instead.
type ShimSpec struct {
	Name   string // ShimName(network ID)
	Parent string
	MAC    net.HardwareAddr
	Addr   netip.Prefix   // a host address in the subnet (berth's IPAM reserves it), as /32 or /128
	Routes []netip.Prefix // exactly these routes via the shim: each sandbox address as /32 (/128)
}

// Link name prefixes of the macvlan and ipvlan drivers' own links in the daemon's netns,
// for the orphan sweep. Each name is at most 15 bytes, the kernel's limit.
const (
	InternalParentPrefix = "bmv-" // an internal network's parent: "bmv-" + 10 hex of the network ID
	InternalPeerPrefix   = "bmp-" // its veth peer
	ShimPrefix           = "bsh-" // a host shim: "bsh-" + 11 hex of the network ID
	SubIfTempPrefix      = "bsi-" // a sandbox interface before it is renamed to its IfName
)

// InternalParentName is the parent berth makes for an internal macvlan/ipvlan network.
func InternalParentName(networkID string) string {
	return InternalParentPrefix + truncName(networkID, 10)
}

// PeerName is the other end of the internal parent veth name (bmv-X -> bmp-X).
func PeerName(name string) string {
	return truncName(InternalPeerPrefix+strings.TrimPrefix(name, InternalParentPrefix), 15)
}

// ShimName is the host shim's link name for a network.
func ShimName(networkID string) string { return ShimPrefix + truncName(networkID, 11) }

// SubIfTempName is the name a sandbox interface has between its creation and its rename
// to ifName inside the netns at nsPath. It is derived from both, so a retry after a crash
// finds (and removes) the half-made link of the same endpoint, and two endpoints being
// made at once never share it.
func SubIfTempName(nsPath, ifName string) string {
	h := fnv.New64a()
	h.Write([]byte(nsPath))
	h.Write([]byte{0})
	h.Write([]byte(ifName))
	return fmt.Sprintf("%s%011x", SubIfTempPrefix, h.Sum64()&(1<<44-1))
}

func truncName(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
