package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"berth/api/client"
)

// Labels berth-cni puts on every sandbox it creates. DEL, CHECK, GC and a repeated ADD find
// "their" sandbox by these, never by name: the name may come from K8S_POD_NAME.
const (
	labelContainer = "io.berth.cni.container" // CNI_CONTAINERID
	labelIfName    = "io.berth.cni.ifname"    // CNI_IFNAME
	labelNetwork   = "io.berth.cni.network"   // the CNI network name (config "name")
)

// ifName is the only interface name berth-cni can honour: berth names a sandbox's
// interfaces eth0, eth1, … itself, and a CNI attachment is a sandbox with one network.
const ifName = "eth0"

// netConf is the network configuration on stdin:
//
//	{"cniVersion":"1.0.0","name":"app","type":"berth-cni","network":"app",
//	 "daemon":"unix:///run/berth/berth.sock","capabilities":{"aliases":true}}
type netConf struct {
	types.PluginConf
	Network       string `json:"network,omitempty"` // berth network name or ID; default: Name
	Daemon        string `json:"daemon,omitempty"`  // unix://PATH; default $BERTH_HOST, else api.DefaultSocket
	RuntimeConfig struct {
		// Aliases is the "aliases" capability as podman (CNI backend) and netavark pass it:
		// CNI network name -> DNS aliases of the container on that network.
		Aliases map[string][]string `json:"aliases,omitempty"`
	} `json:"runtimeConfig"`
}

// parseConf reads the network configuration; missing network and daemon get their defaults.
func parseConf(stdin []byte) (*netConf, error) {
	conf := &netConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("parse network configuration: %v", err), "")
	}
	if conf.Network == "" {
		conf.Network = conf.Name
	}
	if conf.Daemon == "" {
		conf.Daemon = client.DefaultHost()
	}
	if _, err := client.New(conf.Daemon); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid daemon %q: want unix://PATH", conf.Daemon), "")
	}
	return conf, nil
}

// aliases are the container's aliases on this network: runtimeConfig.aliases under the CNI
// network name (podman's key) or the berth network name, in order, without duplicates.
func (c *netConf) aliases() []string {
	var out []string
	for _, key := range []string{c.Name, c.Network} {
		for _, a := range c.RuntimeConfig.Aliases[key] {
			if a != "" && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// cniArgs are the CNI_ARGS berth-cni reads. Kubernetes and podman pass the K8S_* keys with
// IgnoreUnknown=1; any other key without IgnoreUnknown is an error, as the conventions say.
// The field names are the keys (types.LoadArgs matches them by name), hence the spelling.
type cniArgs struct {
	types.CommonArgs
	K8S_POD_NAME               types.UnmarshallableString
	K8S_POD_NAMESPACE          types.UnmarshallableString
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString
	K8S_POD_UID                types.UnmarshallableString
}

func parseArgs(s string) (*cniArgs, error) {
	a := &cniArgs{}
	if err := types.LoadArgs(s, a); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS: %v", err), "")
	}
	return a, nil
}

// maxName and nameRE are berth's rule for sandbox names, which the daemon enforces
// (netmgr's validator). A copy rather than an import: ADD needs the rule before it asks the
// daemon anything, to choose a name, and netmgr would bring the daemon's kernel, firewall
// and store packages into the plugin. FuzzNameRule checks the copy against netmgr's rule.
const maxName = 63

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func validName(s string) bool {
	return len(s) <= maxName && nameRE.MatchString(s) && !strings.Contains(s, "..")
}

// sandboxName is the berth sandbox name of an attachment, so that other sandboxes can
// resolve the container by it:
//   - K8S_POD_NAME when given (podman passes the container name there); it must be a valid
//     berth name, or ADD fails rather than registering a name nobody asked for;
//   - else a hex container ID of 32 or more characters (Docker, containerd CRI, podman)
//     becomes "cni-" + its first 12 characters, like Docker's short ID;
//   - else a container ID that is itself a valid name is used as is (ctr passes
//     "<namespace>-<id>", e.g. "default-web");
//   - else "cni-" + the first 12 hex characters of the ID's SHA-256.
func sandboxName(podName, containerID string) (string, error) {
	if podName != "" {
		if !validName(podName) {
			return "", types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("K8S_POD_NAME %q is not a valid berth sandbox name: want [a-zA-Z0-9][a-zA-Z0-9_.-]* without \"..\", at most %d characters", podName, maxName), "")
		}
		return podName, nil
	}
	if isHexID(containerID) {
		return "cni-" + containerID[:12], nil
	}
	if validName(containerID) {
		return containerID, nil
	}
	sum := sha256.Sum256([]byte(containerID))
	return "cni-" + hex.EncodeToString(sum[:])[:12], nil
}

// isHexID reports whether id looks like a runtime-generated ID: 32+ lowercase hex digits.
func isHexID(id string) bool {
	if len(id) < 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// labels mark a sandbox as the attachment (container, ifname) on the CNI network conf.Name.
func labels(conf *netConf, args *skel.CmdArgs) map[string]string {
	return map[string]string{
		labelContainer: args.ContainerID,
		labelIfName:    args.IfName,
		labelNetwork:   conf.Name,
	}
}
