package store

import (
	"maps"
	"net/netip"
	"time"
)

// Records are plain values. Once a record is inserted into the store it is never mutated:
// writers take Copy(), change the copy and insert it again (copy-on-write, as go-memdb
// requires for its lock-free readers).

// Network drivers.
const (
	DriverBridge = "bridge"
	DriverNull   = "null" // the predefined "none" network
	DriverHost   = "host" // the predefined "host" network
	// DriverOverlay is a global network spanning the hosts of a cluster store (issue 16):
	// on each host a bridge like a bridge network's, plus a VXLAN device joining it to the
	// same network's bridges on the other hosts.
	DriverOverlay = "overlay"
	// DriverMacvlan and DriverIpvlan put sandboxes directly on a parent link of the host
	// (issue 19): each sandbox has a macvlan or ipvlan child of Parent, with its own
	// address on the parent's LAN; no bridge, no veth, no NAT.
	DriverMacvlan = "macvlan"
	DriverIpvlan  = "ipvlan"
)

// Network scopes (inspect's "Scope"): a local network exists on this host only; a global
// one is recorded in the cluster store and mirrored on every host of the cluster.
const (
	ScopeLocal  = "local"
	ScopeGlobal = "global"
)

// Subnet is one IPAM pool of a network.
type Subnet struct {
	Subnet  netip.Prefix `json:"Subnet"`
	Gateway netip.Addr   `json:"Gateway"`           // on the bridge; always set for bridge networks
	IPRange netip.Prefix `json:"IPRange,omitempty"` // dynamic addresses come from here; zero means Subnet
}

// Network is a bridge network (or one of the predefined none/host pseudo networks, or a
// configuration network: ConfigOnly).
type Network struct {
	ID       string `json:"ID"`   // 64 hex
	Name     string `json:"Name"` // as given; unique case-insensitively
	Driver   string `json:"Driver"`
	Bridge   string `json:"Bridge"` // kernel device name; empty for none/host and configuration networks
	MAC      string `json:"MAC"`    // fixed bridge MAC, so it never follows a port
	MTU      int    `json:"MTU"`    // 0 means the kernel default (1500)
	Internal bool   `json:"Internal"`
	IPv6     bool   `json:"IPv6"`
	// NoIPv4 marks an IPv6-only network (--ipv4=false): no IPv4 subnet, bridge address or
	// sandbox address. Negated so that state files from before it mean IPv4, as they had.
	NoIPv4     bool `json:"NoIPv4,omitempty"`
	Attachable bool `json:"Attachable,omitempty"` // --attachable: shown, changes nothing outside swarm
	// ConfigOnly marks a configuration network (--config-only, Driver DriverNull): subnets
	// and options for networks made --config-from it; no bridge, no endpoints.
	ConfigOnly bool `json:"ConfigOnly,omitempty"`
	// ConfigFrom is the name of the configuration network this one took its subnets and
	// options from (--config-from), which cannot be removed while this one exists; or "".
	ConfigFrom string   `json:"ConfigFrom,omitempty"`
	ICC        bool     `json:"ICC"`
	Predefined bool     `json:"Predefined"` // bridge, none, host: cannot be removed
	Subnets    []Subnet `json:"Subnets"`    // IPv4 first, then IPv6
	// Aux are the --aux-address NAME=IP, each in one of Subnets: never handed out, static
	// or dynamic. Here rather than in Subnet, which stays comparable with ==.
	Aux     map[string]netip.Addr `json:"Aux,omitempty"` // or nil
	Options map[string]string     `json:"Options"`
	Labels  map[string]string     `json:"Labels"`
	Created time.Time             `json:"Created"`
	// Scope is ScopeGlobal for overlay networks; "" (older state files) and ScopeLocal
	// mean local.
	Scope string `json:"Scope,omitempty"`
	// VNI is an overlay network's VXLAN network identifier, allocated in the cluster store:
	// the same on every host.
	VNI int `json:"VNI,omitempty"`

	// Parent is a macvlan or ipvlan network's parent link (zero for other drivers).
	Parent Parent `json:"Parent,omitzero"`
	// ParentCreated says berth made Parent (a VLAN sub-interface that did not exist, or an
	// internal parent): network rm deletes it. A parent that was there stays.
	ParentCreated bool   `json:"ParentCreated,omitempty"`
	Mode          string `json:"Mode,omitempty"` // macvlan: bridge|private|vepa|passthru; ipvlan: l2|l3|l3s
	Flag          string `json:"Flag,omitempty"` // ipvlan: bridge|private|vepa
	// HostShim is -o berth.host_shim=true (macvlan only): the host reaches the sandboxes
	// through a macvlan of its own on Parent, with address ShimAddrs (reserved in IPAM).
	HostShim  bool         `json:"HostShim,omitempty"`
	ShimAddrs []netip.Addr `json:"ShimAddrs,omitempty"` // or nil
}

// Parent is the parent link of a macvlan or ipvlan network.
type Parent struct {
	Name     string `json:"Name"`               // "eth0", "eth0.20", or berth's internal "bmv-..."
	Link     string `json:"Link,omitempty"`     // a VLAN's lower device ("eth0" for "eth0.20"); "" otherwise
	VLAN     int    `json:"VLAN,omitempty"`     // its 802.1Q ID; 0: no VLAN
	Internal bool   `json:"Internal,omitempty"` // no -o parent: berth's own parent, one end of a veth pair
}

// Global reports whether the network lives in the cluster store (an overlay network).
func (n *Network) Global() bool { return n.Scope == ScopeGlobal }

// Bridged reports whether the network has a bridge on this host that sandboxes join
// through veths: bridge and overlay networks.
func (n *Network) Bridged() bool { return n.Driver == DriverBridge || n.Driver == DriverOverlay }

// OnParent reports whether the network is a macvlan or ipvlan network, whose sandboxes
// join through a child of its Parent link instead of a veth on a bridge.
func (n *Network) OnParent() bool { return n.Driver == DriverMacvlan || n.Driver == DriverIpvlan }

// UserDefined reports whether the network is a user-defined bridge, overlay, macvlan or
// ipvlan network, the only kinds whose sandboxes get the embedded DNS (Docker: the default
// bridge, none and host do not).
func (n *Network) UserDefined() bool { return (n.Bridged() || n.OnParent()) && !n.Predefined }

// Copy returns a deep copy.
func (n *Network) Copy() *Network {
	c := *n
	c.Subnets = append([]Subnet(nil), n.Subnets...)
	c.Aux = maps.Clone(n.Aux)
	c.Options = copyMap(n.Options)
	c.Labels = copyMap(n.Labels)
	c.ShimAddrs = append([]netip.Addr(nil), n.ShimAddrs...)
	return &c
}

// Sandbox states. A new sandbox's records are committed once, ready, after its kernel work;
// StateCreating marks the records of a create cut short by a crash, which the restore pass
// puts back from netmgr's intent file (Intent, Recover) and then undoes. State
// files of earlier versions, which committed StateCreating first, hold such records too.
const (
	StateCreating = "creating"
	StateReady    = "ready"
)

// Network modes of a sandbox.
const (
	ModeBridge    = "bridge"    // attached to bridge networks through endpoints
	ModeNone      = "none"      // own netns with lo only
	ModeHost      = "host"      // the daemon's own netns
	ModeContainer = "container" // shares the netns of sandbox Container
)

// Sandbox is a named network namespace at NetNSPath.
type Sandbox struct {
	ID         string `json:"ID"`   // 64 hex
	Name       string `json:"Name"` // unique case-insensitively; the /run/netns file name
	Hostname   string `json:"Hostname"`
	Domainname string `json:"Domainname,omitempty"`
	// UTSPath is the pinned UTS namespace that `berth exec` and `run` enter, with the
	// sandbox's hostname: its own (RunDir/uts/ID), the shared sandbox's (ModeContainer), or
	// "" (host mode and adopted netns: the runtime's UTS is not berth's to make).
	UTSPath    string            `json:"UTSPath,omitempty"`
	Mode       string            `json:"Mode"`
	Container  string            `json:"Container,omitempty"` // ID of the sandbox whose netns is shared (ModeContainer)
	NetNSPath  string            `json:"NetNSPath"`
	Adopted    string            `json:"Adopted,omitempty"` // netns made by someone else (--netns), pinned at NetNSPath; never destroyed
	Labels     map[string]string `json:"Labels,omitempty"`  // --label: the user's (or a runtime's) own marks
	State      string            `json:"State"`
	DNS        []string          `json:"DNS"`        // --dns
	DNSSearch  []string          `json:"DNSSearch"`  // --dns-search
	DNSOptions []string          `json:"DNSOptions"` // --dns-option
	ExtraHosts []string          `json:"ExtraHosts"` // --add-host HOST:IP
	Ports      []Port            `json:"Ports"`      // --publish, host ports resolved
	Expose     []Port            `json:"Expose"`     // --expose (HostPort unused): what a legacy link opens
	Created    time.Time         `json:"Created"`
	Seq        uint64            `json:"Seq"` // creation order, for stable listings
}

// Copy returns a deep copy.
func (s *Sandbox) Copy() *Sandbox {
	c := *s
	c.DNS = append([]string(nil), s.DNS...)
	c.DNSSearch = append([]string(nil), s.DNSSearch...)
	c.DNSOptions = append([]string(nil), s.DNSOptions...)
	c.ExtraHosts = append([]string(nil), s.ExtraHosts...)
	c.Ports = append([]Port(nil), s.Ports...)
	c.Expose = append([]Port(nil), s.Expose...)
	c.Labels = copyMap(s.Labels)
	return &c
}

// Port is a published (or exposed) port of a sandbox.
type Port struct {
	Proto    string     `json:"Proto"`            // "tcp" or "udp"
	HostIP   netip.Addr `json:"HostIP,omitempty"` // zero: every address of the daemon's netns
	HostPort uint16     `json:"HostPort,omitempty"`
	Port     uint16     `json:"Port"` // inside the sandbox
}

// ShortID is the 12-hex form Docker resolves as a name.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Link is a --link NAME[:ALIAS] made by a sandbox on one network.
type Link struct {
	Target string `json:"Target"` // sandbox name as given (may not exist yet on user networks)
	Alias  string `json:"Alias"`  // defaults to Target
}

// Endpoint is the attachment of one sandbox to one network: a veth pair, its addresses and
// the names it answers to on that network.
type Endpoint struct {
	ID        string     `json:"ID"` // 64 hex
	NetworkID string     `json:"NetworkID"`
	SandboxID string     `json:"SandboxID"`
	IfName    string     `json:"IfName"`   // inside the sandbox: eth0, eth1, ...
	HostVeth  string     `json:"HostVeth"` // host end, VethName(ID); "" on macvlan/ipvlan networks (no veth)
	MAC       string     `json:"MAC"`
	IPv4      netip.Addr `json:"IPv4"`     // zero if none
	IPv6      netip.Addr `json:"IPv6"`     // zero if none
	Aliases   []string   `json:"Aliases"`  // user network aliases, as given
	DNSNames  []string   `json:"DNSNames"` // name, aliases, short id, hostname; lower-cased, deduplicated
	Links     []Link     `json:"Links"`
	Seq       uint64     `json:"Seq"` // join order within the sandbox
	// Host is, for a remote endpoint (one of a sandbox on another host of the cluster,
	// mirrored from the cluster store), that host's cluster ID; "" for this host's own.
	// A remote endpoint has no sandbox record, no veth (HostVeth "") and no links here:
	// only what DNS and the VXLAN device need.
	Host string `json:"Host,omitempty"`
	// HostAddr is a remote endpoint's host's underlay address, where VXLAN frames for MAC go.
	HostAddr netip.Addr `json:"HostAddr,omitempty"`
	// SandboxName is a remote endpoint's sandbox name on its host (PTR answers, inspect).
	SandboxName string `json:"SandboxName,omitempty"`
}

// Remote reports whether the endpoint is another host's, mirrored from the cluster store.
func (e *Endpoint) Remote() bool { return e.Host != "" }

// Copy returns a deep copy.
func (e *Endpoint) Copy() *Endpoint {
	c := *e
	c.Aliases = append([]string(nil), e.Aliases...)
	c.DNSNames = append([]string(nil), e.DNSNames...)
	c.Links = append([]Link(nil), e.Links...)
	return &c
}

// VethName is the host end of an endpoint's veth: a fixed prefix and 8 hex of the endpoint
// ID, so the orphan sweep after a crash is a set difference over link names.
func VethName(endpointID string) string { return VethPrefix + endpointID[:8] }

// VethPrefix marks host-side veths owned by berth.
const VethPrefix = "bth"

// Address is one IPAM allocation: Addr on network NetworkID belongs to endpoint Owner.
// Unique on (network, address): the store itself refuses to hand an address out twice.
type Address struct {
	NetworkID string     `json:"NetworkID"`
	Addr      netip.Addr `json:"Addr"`
	Owner     string     `json:"Owner"` // endpoint ID
}

// Meta holds small daemon-wide counters that must survive restarts.
type Meta struct {
	Key   string `json:"Key"`
	Value uint64 `json:"Value"`
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// File is what netmgr last wrote to one generated file of a sandbox (resolv.conf or hosts,
// in /etc/netns/NAME or its copy under the exec root). A file whose content matches neither
// Hash nor Prev was changed by someone else, and netmgr leaves it alone, as Docker does with
// a container's edited resolv.conf. Keyed by (SandboxID, Name).
type File struct {
	SandboxID string `json:"SandboxID"`
	Name      string `json:"Name"` // which copy and which file: "etc/resolv.conf", "run/hosts", ...
	Hash      string `json:"Hash"` // hex SHA-256 of the content last written (or being written)
	// Prev is the hash of the content on disk when the write of Hash began, or "": the record
	// reaches the disk before the file is written, so a crash between the two leaves Prev on
	// disk, which is still berth's and not a user's edit.
	Prev string `json:"Prev,omitempty"`
}

// Copy returns a copy (File has no reference fields; Copy keeps the records' convention).
func (f *File) Copy() *File {
	c := *f
	return &c
}
