// Package api holds the request and response types of berth's HTTP API (JSON over the
// daemon's socket, under /v1). It has no logic: client and daemon share these shapes,
// and netmgr's change methods take the requests (fields tagged `json:"-"` come from the
// URL, not the body).
package api

import "time"

// Version is the path prefix of every endpoint.
const Version = "/v1"

// DefaultSocket is where the daemon listens and clients dial unless told otherwise.
const DefaultSocket = "/run/berth/berth.sock"

// Error is the body of every non-2xx reply. Message is one line naming the field and reason.
type Error struct {
	Message string `json:"message"`
}

// IDResponse answers create calls.
type IDResponse struct {
	ID   string `json:"Id"`
	Name string `json:"Name,omitempty"`
}

// NetworkCreate is POST /v1/networks.
type NetworkCreate struct {
	Name     string   `json:"Name"`
	Driver   string   `json:"Driver,omitempty"` // bridge (default) or overlay
	Subnets  []string `json:"Subnets,omitempty"`
	Gateways []string `json:"Gateways,omitempty"` // matched to subnets by containment
	// IPRanges are the --ip-range of the subnets, each matched to the subnet containing it
	// (at most one per subnet), as docker network create matches them.
	IPRanges []string `json:"IPRanges,omitempty"`
	// IPRange is the single --ip-range of clients older than IPRanges: one more entry of it.
	IPRange string `json:"IPRange,omitempty"`
	// AuxAddresses are --aux-address NAME=IP: addresses of a subnet (the one containing
	// each) that are never handed out, shown in inspect's IPAM.Config[].AuxiliaryAddresses.
	AuxAddresses map[string]string `json:"AuxAddresses,omitempty"`
	Internal     bool              `json:"Internal,omitempty"`
	// IPv4 is --ipv4: nil or true gives the network an IPv4 subnet; false (Docker 28's
	// --ipv4=false) makes it IPv6-only, which needs IPv6.
	IPv4       *bool             `json:"EnableIPv4,omitempty"`
	IPv6       bool              `json:"EnableIPv6,omitempty"`
	Attachable bool              `json:"Attachable,omitempty"` // accepted and shown, as Docker outside swarm
	ConfigOnly bool              `json:"ConfigOnly,omitempty"` // a configuration for ConfigFrom: no bridge, no sandboxes
	ConfigFrom string            `json:"ConfigFrom,omitempty"` // NAME|ID of a ConfigOnly network whose IPAM and options this one takes
	Options    map[string]string `json:"Options,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// NetworkRemove is DELETE /v1/networks/{net}.
type NetworkRemove struct {
	Network string `json:"-"` // NAME|ID|ID-prefix, from the path
}

// NetworkConnect is POST /v1/networks/{net}/connect.
type NetworkConnect struct {
	Network string   `json:"-"` // NAME|ID|ID-prefix, from the path
	Sandbox string   `json:"Container"`
	Aliases []string `json:"Aliases,omitempty"`
	IPv4    string   `json:"IPv4Address,omitempty"`
	IPv6    string   `json:"IPv6Address,omitempty"`
	Links   []string `json:"Links,omitempty"` // NAME[:ALIAS]
}

// NetworkDisconnect is POST /v1/networks/{net}/disconnect.
type NetworkDisconnect struct {
	Network string `json:"-"` // NAME|ID|ID-prefix, from the path
	Sandbox string `json:"Container"`
	Force   bool   `json:"Force,omitempty"`
}

// PruneResponse answers POST /v1/networks/prune.
type PruneResponse struct {
	Deleted []string `json:"NetworksDeleted"`
}

// IPAMConfig is one pool as docker network inspect shows it.
type IPAMConfig struct {
	Subnet       string            `json:"Subnet"`
	IPRange      string            `json:"IPRange,omitempty"`
	Gateway      string            `json:"Gateway,omitempty"`
	AuxAddresses map[string]string `json:"AuxiliaryAddresses,omitempty"` // NAME -> IP, as --aux-address gave them
}

// IPAM is docker network inspect's IPAM block.
type IPAM struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// NetworkContainer is one attached sandbox in network inspect.
type NetworkContainer struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// Network is GET /v1/networks/{net}, shaped like `docker network inspect`.
type Network struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    time.Time                   `json:"Created"`
	Scope      string                      `json:"Scope"`
	Driver     string                      `json:"Driver"`
	EnableIPv4 bool                        `json:"EnableIPv4"`
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       IPAM                        `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`    // always false (no swarm routing mesh); docker's inspect has it
	ConfigFrom ConfigReference             `json:"ConfigFrom"` // Network "" unless created --config-from
	ConfigOnly bool                        `json:"ConfigOnly"`
	Containers map[string]NetworkContainer `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
	// Peers lists, for a global network, every host of the cluster with an endpoint on it
	// (this one included), as Docker's swarm overlay networks do. Containers holds only
	// this host's sandboxes, as in Docker.
	Peers []NetworkPeer `json:"Peers,omitempty"`
}

// ConfigReference names the config-only network a network took its configuration from.
type ConfigReference struct {
	Network string `json:"Network"`
}

// NetworkPeer is one host of a global network: its cluster host ID and underlay address.
type NetworkPeer struct {
	Name string `json:"Name"`
	IP   string `json:"IP"`
}

// SandboxCreate is POST /v1/sandboxes.
type SandboxCreate struct {
	Name       string            `json:"Name,omitempty"`
	Hostname   string            `json:"Hostname,omitempty"`
	Domainname string            `json:"Domainname,omitempty"`
	Networks   []string          `json:"Networks,omitempty"` // NET, none, host or container:NAME; default bridge
	Aliases    []string          `json:"Aliases,omitempty"`  // on the first network
	IPv4       string            `json:"IPv4Address,omitempty"`
	IPv6       string            `json:"IPv6Address,omitempty"`
	MAC        string            `json:"MacAddress,omitempty"`
	Links      []string          `json:"Links,omitempty"` // NAME[:ALIAS]
	DNS        []string          `json:"Dns,omitempty"`
	DNSSearch  []string          `json:"DnsSearch,omitempty"`
	DNSOptions []string          `json:"DnsOptions,omitempty"`
	ExtraHosts []string          `json:"ExtraHosts,omitempty"` // HOST:IP
	NetNS      string            `json:"NetNS,omitempty"`      // adopt this existing netns (a path) instead of making one
	Labels     map[string]string `json:"Labels,omitempty"`     // KEY=VALUE marks, shown by inspect
	Publish    []string          `json:"Publish,omitempty"`    // [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/PROTO], as docker run -p
	Expose     []string          `json:"Expose,omitempty"`     // PORT[-END][/PROTO]
	PublishAll bool              `json:"PublishAll,omitempty"` // every exposed port on an ephemeral host port (-P)
}

// PortBinding is one host side of a published port, as docker inspect shows it.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// SandboxRemove is DELETE /v1/sandboxes/{sb}?force=1.
type SandboxRemove struct {
	Sandbox string `json:"-"` // NAME|ID|ID-prefix, from the path
	Force   bool   `json:"-"` // from the query: remove even with processes in the netns
}

// SandboxRename is POST /v1/sandboxes/{sb}/rename.
type SandboxRename struct {
	Sandbox string `json:"-"` // NAME|ID|ID-prefix, from the path
	Name    string `json:"Name"`
}

// EndpointSettings is one network of a sandbox in sandbox inspect, like
// docker inspect's NetworkSettings.Networks.<net>.
type EndpointSettings struct {
	NetworkID           string   `json:"NetworkID"`
	EndpointID          string   `json:"EndpointID"`
	Gateway             string   `json:"Gateway"`
	IPAddress           string   `json:"IPAddress"`
	IPPrefixLen         int      `json:"IPPrefixLen"`
	IPv6Gateway         string   `json:"IPv6Gateway"`
	GlobalIPv6Address   string   `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen int      `json:"GlobalIPv6PrefixLen"`
	MacAddress          string   `json:"MacAddress"`
	Aliases             []string `json:"Aliases"`
	DNSNames            []string `json:"DNSNames"`
	Links               []string `json:"Links"`
	InterfaceName       string   `json:"InterfaceName"`
}

// Sandbox is GET /v1/sandboxes/{sb}.
type Sandbox struct {
	ID             string                      `json:"Id"`
	Name           string                      `json:"Name"`
	Created        time.Time                   `json:"Created"`
	State          string                      `json:"State"`
	Hostname       string                      `json:"Hostname"`
	Domainname     string                      `json:"Domainname"`
	UTSPath        string                      `json:"UTSNamespace,omitempty"` // pinned UTS namespace, entered by exec and run
	NetworkMode    string                      `json:"NetworkMode"`
	NetNSPath      string                      `json:"SandboxKey"`
	ResolvConfPath string                      `json:"ResolvConfPath"`
	HostsPath      string                      `json:"HostsPath"`
	DNS            []string                    `json:"Dns"`
	DNSSearch      []string                    `json:"DnsSearch"`
	DNSOptions     []string                    `json:"DnsOptions"`
	ExtraHosts     []string                    `json:"ExtraHosts"`
	Networks       map[string]EndpointSettings `json:"Networks"`
	Labels         map[string]string           `json:"Labels"`
	NetNSAdopted   string                      `json:"NetNSAdopted,omitempty"` // the path given to --netns
	Ports          map[string][]PortBinding    `json:"Ports"`                  // "80/tcp" -> bindings; exposed-only ports map to []
	ExposedPorts   map[string]struct{}         `json:"ExposedPorts"`           // "80/tcp"
	Files          map[string]SandboxFile      `json:"Files"`                  // "resolv.conf", "hosts": the files at ResolvConfPath, HostsPath
}

// SandboxFile is one file berth generates for a sandbox.
type SandboxFile struct {
	Path string `json:"Path"`
	// Modified: someone changed the file (or put a symlink or other non-file in its place)
	// since berth last wrote it, so berth leaves it alone; restoring what berth wrote hands
	// it back.
	Modified bool `json:"Modified"`
}

// DNSQuery answers GET /v1/sandboxes/{sb}/dns?name=NAME&type=TYPE: what the sandbox would
// get from 127.0.0.11, and why.
type DNSQuery struct {
	Sandbox   string   `json:"Sandbox"`
	Name      string   `json:"Name"`
	Type      string   `json:"Type"`
	Rcode     string   `json:"Rcode"`     // NOERROR, NXDOMAIN, SERVFAIL, ...
	Flags     []string `json:"Flags"`     // qr rd ra aa tc, as dig prints them
	Answer    []string `json:"Answer"`    // records in zone-file form
	Authority []string `json:"Authority"` // e.g. the upstream's SOA of an NXDOMAIN
	How       string   `json:"How"`       // which network, record, link, upstream or the cache answered
	Cached    bool     `json:"Cached"`    // an upstream's earlier reply, from the daemon's forward cache
	CacheTTL  uint32   `json:"CacheTTL"`  // then: seconds the cache keeps it still (the answer's TTLs count down with it)
}

// Event is one line of GET /v1/events (newline-delimited JSON), like `docker events`.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"Type"`   // "network", "sandbox" or "daemon"
	Action  string    `json:"Action"` // create, rm, connect, disconnect, rename, restart
	ID      string    `json:"ID,omitempty"`
	Name    string    `json:"Name,omitempty"`
	Network string    `json:"Network,omitempty"` // connect/disconnect: the network's name
	// NetworkID and Driver are the network's ID (connect/disconnect) and driver (every
	// network event): Docker's network events carry both.
	NetworkID string `json:"NetworkID,omitempty"`
	Driver    string `json:"Driver,omitempty"`
	OldName   string `json:"OldName,omitempty"` // rename
}
