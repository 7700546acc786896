package dockerapi

import "berth/api"

// Docker's JSON, written by hand with only the fields berth fills or reads (the names are
// those of github.com/docker/docker/api/types, which this package does not import: the
// daemon must not link Docker's module). Field order follows Docker's, so a reply reads
// like dockerd's.

// errorResponse is the body of every non-2xx reply, as dockerd's.
type errorResponse struct {
	Message string `json:"message"`
}

// versionResponse is GET /version.
type versionResponse struct {
	Platform      platform    `json:"Platform"`
	Components    []component `json:"Components"`
	Version       string      `json:"Version"`
	APIVersion    string      `json:"ApiVersion"`
	MinAPIVersion string      `json:"MinAPIVersion"`
	GitCommit     string      `json:"GitCommit"`
	GoVersion     string      `json:"GoVersion"`
	Os            string      `json:"Os"`
	Arch          string      `json:"Arch"`
	KernelVersion string      `json:"KernelVersion"`
	BuildTime     string      `json:"BuildTime"`
}

type platform struct {
	Name string `json:"Name"`
}

type component struct {
	Name    string            `json:"Name"`
	Version string            `json:"Version"`
	Details map[string]string `json:"Details"`
}

// Info is GET /info: what the daemon knows (Backend.Info), the rest filled in by the
// handler. Only what `docker info` prints or dereferences is here; the CLI reads the
// Swarm block and RegistryConfig, so both are always present.
type Info struct {
	ID                string `json:"ID"`
	Containers        int    `json:"Containers"` // berth's sandboxes
	ContainersRunning int    `json:"ContainersRunning"`
	ContainersPaused  int    `json:"ContainersPaused"`
	ContainersStopped int    `json:"ContainersStopped"`
	Images            int    `json:"Images"`
	Driver            string `json:"Driver"`
	Plugins           struct {
		Volume  []string `json:"Volume"`
		Network []string `json:"Network"`
		Log     []string `json:"Log"`
	} `json:"Plugins"`
	IPv4Forwarding    bool           `json:"IPv4Forwarding"`
	Debug             bool           `json:"Debug"`
	NFd               int            `json:"NFd"`
	NGoroutines       int            `json:"NGoroutines"`
	SystemTime        string         `json:"SystemTime"`
	LoggingDriver     string         `json:"LoggingDriver"`
	CgroupDriver      string         `json:"CgroupDriver"`
	NEventsListener   int            `json:"NEventsListener"`
	KernelVersion     string         `json:"KernelVersion"`
	OperatingSystem   string         `json:"OperatingSystem"`
	OSType            string         `json:"OSType"`
	Architecture      string         `json:"Architecture"`
	RegistryConfig    registryConfig `json:"RegistryConfig"`
	NCPU              int            `json:"NCPU"`
	MemTotal          int64          `json:"MemTotal"`
	DockerRootDir     string         `json:"DockerRootDir"`
	Name              string         `json:"Name"`
	Labels            []string       `json:"Labels"`
	ExperimentalBuild bool           `json:"ExperimentalBuild"`
	ServerVersion     string         `json:"ServerVersion"`
	Runtimes          map[string]any `json:"Runtimes"`
	DefaultRuntime    string         `json:"DefaultRuntime"`
	Swarm             swarmInfo      `json:"Swarm"`
	LiveRestore       bool           `json:"LiveRestoreEnabled"`
	SecurityOptions   []string       `json:"SecurityOptions"`
	Warnings          []string       `json:"Warnings"`
}

type registryConfig struct {
	InsecureRegistryCIDRs []string       `json:"InsecureRegistryCIDRs"`
	IndexConfigs          map[string]any `json:"IndexConfigs"`
	Mirrors               []string       `json:"Mirrors"`
}

// swarmInfo must say "inactive": for any other state the CLI prints the cluster block,
// which it reads through pointers berth would leave nil.
type swarmInfo struct {
	NodeID           string `json:"NodeID"`
	NodeAddr         string `json:"NodeAddr"`
	LocalNodeState   string `json:"LocalNodeState"`
	ControlAvailable bool   `json:"ControlAvailable"`
	Error            string `json:"Error"`
}

// createRequest is POST /networks/create. Pointers are fields whose absence means
// something (Docker's defaults); the rest are zero when absent.
type createRequest struct {
	Name           string               `json:"Name"`
	CheckDuplicate *bool                `json:"CheckDuplicate"` // berth always refuses a duplicate name, as Docker since API 1.44
	Driver         string               `json:"Driver"`
	Scope          string               `json:"Scope"`
	EnableIPv4     *bool                `json:"EnableIPv4"` // API 1.48 and later
	EnableIPv6     *bool                `json:"EnableIPv6"`
	IPAM           *api.IPAM            `json:"IPAM"`
	Internal       bool                 `json:"Internal"`
	Attachable     bool                 `json:"Attachable"`
	Ingress        bool                 `json:"Ingress"`
	ConfigOnly     bool                 `json:"ConfigOnly"`
	ConfigFrom     *api.ConfigReference `json:"ConfigFrom"`
	Options        map[string]string    `json:"Options"`
	Labels         map[string]string    `json:"Labels"`
}

// createResponse answers POST /networks/create with 201.
type createResponse struct {
	ID      string `json:"Id"`
	Warning string `json:"Warning"`
}

// connectRequest is POST /networks/{id}/connect.
type connectRequest struct {
	Container      string            `json:"Container"`
	EndpointConfig *endpointSettings `json:"EndpointConfig"`
}

// endpointSettings is the part of Docker's EndpointSettings a client may set. The
// read-only fields (IPAddress, Gateway, ...) that some clients echo back are ignored, as
// dockerd ignores them.
type endpointSettings struct {
	IPAMConfig *endpointIPAMConfig `json:"IPAMConfig"`
	Links      []string            `json:"Links"`
	Aliases    []string            `json:"Aliases"`
	MacAddress string              `json:"MacAddress"`
	DriverOpts map[string]string   `json:"DriverOpts"`
}

type endpointIPAMConfig struct {
	IPv4Address  string   `json:"IPv4Address"`
	IPv6Address  string   `json:"IPv6Address"`
	LinkLocalIPs []string `json:"LinkLocalIPs"`
}

// disconnectRequest is POST /networks/{id}/disconnect.
type disconnectRequest struct {
	Container string `json:"Container"`
	Force     bool   `json:"Force"`
}

// pruneReport answers POST /networks/prune.
type pruneReport struct {
	NetworksDeleted []string `json:"NetworksDeleted"`
}

// message is one event of GET /events: Docker's events.Message. Status, ID and From are
// the pre-1.22 fields, which dockerd still fills for container events.
type message struct {
	Status   string `json:"status,omitempty"`
	ID       string `json:"id,omitempty"`
	From     string `json:"from,omitempty"`
	Type     string `json:"Type"`
	Action   string `json:"Action"`
	Actor    actor  `json:"Actor"`
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

type actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}
