package dockerapi

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"berth/api"
	"berth/internal/httplog"
)

// The network endpoints: Docker's requests become berth's (api.NetworkCreate, ...), and
// berth's views (api.Network, shaped like Docker's network.Inspect key for key) are served
// as they are. Validation of the values is the Backend's (netmgr's), so both front ends
// refuse the same inputs with the same one-line reasons.

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) {
	args, err := queryFilters(r)
	if err == nil {
		var list []api.Network
		if list, err = s.b.Networks(args); err == nil {
			if list == nil {
				list = []api.Network{} // [] as dockerd, not null
			}
			httplog.WriteJSON(w, http.StatusOK, list)
			return
		}
	}
	writeError(w, err)
}

// inspectNetwork is GET /networks/{id}[?verbose=BOOL&scope=SCOPE]. verbose adds only swarm
// service details in Docker, which berth has none of; a scope other than the network's
// hides it, as in dockerd.
func (s *Server) inspectNetwork(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if v := q.Get("verbose"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "invalid value for verbose: %s: %w", v, err))
			return
		}
	}
	ref := r.PathValue("id")
	n, err := s.b.Network(ref)
	if err != nil {
		writeError(w, err)
		return
	}
	if sc := q.Get("scope"); sc != "" && sc != n.Scope {
		writeError(w, NetworkNotFound(ref))
		return
	}
	httplog.WriteJSON(w, http.StatusOK, n)
}

// NetworkNotFound is dockerd's 404 for a network reference that names none.
func NetworkNotFound(ref string) error {
	return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("network %s not found", ref)}
}

// ContainerNotFound is dockerd's 404 for a container (here: sandbox) that does not exist.
func ContainerNotFound(ref string) error {
	return &Error{Status: http.StatusNotFound, Message: "No such container: " + ref}
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	create, err := toCreate(req, requestVersion(r))
	if err != nil {
		writeError(w, err)
		return
	}
	id, err := s.b.CreateNetwork(r.Context(), create)
	if err != nil {
		writeError(w, err)
		return
	}
	httplog.WriteJSON(w, http.StatusCreated, createResponse{ID: id})
}

// predefined are the names dockerd refuses to create (daemon/network IsPredefined on
// Linux: "default" is the network mode meaning bridge).
var predefined = []string{"bridge", "host", "none", "default"}

// toCreate maps Docker's create request onto berth's. The API version decides whether
// EnableIPv4 counts, as in dockerd: it came with 1.48, and is ignored below.
func toCreate(req createRequest, version string) (api.NetworkCreate, error) {
	if slices.Contains(predefined, req.Name) {
		return api.NetworkCreate{}, &Error{Status: http.StatusForbidden,
			Message: fmt.Sprintf("operation is not permitted on predefined %s network ", req.Name)}
	}
	switch req.Driver {
	case "", "bridge", "overlay":
	default:
		// dockerd looks the driver up as a plugin: 404 with these words.
		return api.NetworkCreate{}, &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("plugin %q not found", req.Driver)}
	}
	switch req.Scope {
	case "", "local", "global":
	default:
		return api.NetworkCreate{}, badRequest("invalid Scope %q: berth has local (bridge) and global (overlay) networks, no swarm", req.Scope)
	}
	if req.Ingress {
		return api.NetworkCreate{}, badRequest("invalid Ingress true: berth has no swarm routing mesh")
	}
	c := api.NetworkCreate{
		Name: req.Name, Driver: req.Driver, Internal: req.Internal, Attachable: req.Attachable,
		ConfigOnly: req.ConfigOnly, IPv4: req.EnableIPv4,
		Options: req.Options, Labels: req.Labels,
	}
	if compareVersions(version, "1.48") < 0 {
		c.IPv4 = nil
	}
	if req.EnableIPv6 != nil {
		c.IPv6 = *req.EnableIPv6
	}
	if req.ConfigFrom != nil {
		c.ConfigFrom = req.ConfigFrom.Network
	}
	if req.IPAM != nil {
		if err := toIPAM(*req.IPAM, &c); err != nil {
			return api.NetworkCreate{}, err
		}
	}
	return c, nil
}

// toIPAM maps Docker's per-pool IPAM config onto berth's lists: each pool's subnet,
// gateway and range (netmgr matches gateways and ranges to subnets by containment, which
// is where Docker's pools put them) and one map of auxiliary addresses.
func toIPAM(in api.IPAM, c *api.NetworkCreate) error {
	if in.Driver != "" && in.Driver != "default" {
		return badRequest("invalid IPAM.Driver %q: berth has only the default IPAM driver", in.Driver)
	}
	if len(in.Options) > 0 {
		k := slices.Sorted(maps.Keys(in.Options))[0]
		return badRequest("invalid IPAM.Options %q: the default IPAM driver of berth takes no options", k)
	}
	for i, p := range in.Config {
		if p.Subnet == "" {
			if p.Gateway != "" || p.IPRange != "" || len(p.AuxAddresses) > 0 {
				return badRequest("invalid IPAM.Config[%d]: a gateway, IP range or auxiliary address needs the pool's Subnet", i)
			}
			continue
		}
		c.Subnets = append(c.Subnets, p.Subnet)
		if p.Gateway != "" {
			c.Gateways = append(c.Gateways, p.Gateway)
		}
		if p.IPRange != "" {
			c.IPRanges = append(c.IPRanges, p.IPRange)
		}
		for name, ip := range p.AuxAddresses {
			if c.AuxAddresses == nil {
				c.AuxAddresses = map[string]string{}
			}
			if old, ok := c.AuxAddresses[name]; ok && old != ip {
				return badRequest("invalid IPAM.Config[%d].AuxiliaryAddresses %q: already %s in another pool", i, name, old)
			}
			c.AuxAddresses[name] = ip
		}
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return Errorf(http.StatusBadRequest, format, args...)
}

// removeNetwork is DELETE /networks/{id}: 204, as dockerd.
func (s *Server) removeNetwork(w http.ResponseWriter, r *http.Request) {
	if err := s.b.RemoveNetwork(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// connect is POST /networks/{id}/connect: 200 without a body, as dockerd.
func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	var req connectRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	c := api.NetworkConnect{Network: r.PathValue("id"), Sandbox: req.Container}
	if ec := req.EndpointConfig; ec != nil {
		if ec.MacAddress != "" {
			writeError(w, badRequest("invalid EndpointConfig.MacAddress %q: berth sets a sandbox's MAC address only when it creates it (--mac-address)", ec.MacAddress))
			return
		}
		if len(ec.DriverOpts) > 0 {
			k := slices.Sorted(maps.Keys(ec.DriverOpts))[0]
			writeError(w, badRequest("invalid EndpointConfig.DriverOpts %q: the bridge driver of berth takes no endpoint options", k))
			return
		}
		c.Aliases, c.Links = ec.Aliases, ec.Links
		if ip := ec.IPAMConfig; ip != nil {
			if len(ip.LinkLocalIPs) > 0 {
				writeError(w, badRequest("invalid EndpointConfig.IPAMConfig.LinkLocalIPs %q: not supported by berth", ip.LinkLocalIPs[0]))
				return
			}
			c.IPv4, c.IPv6 = ip.IPv4Address, ip.IPv6Address
		}
	}
	if c.Sandbox == "" {
		writeError(w, ContainerNotFound(""))
		return
	}
	if err := s.b.Connect(r.Context(), c); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// disconnect is POST /networks/{id}/disconnect: 200 without a body, as dockerd.
func (s *Server) disconnect(w http.ResponseWriter, r *http.Request) {
	var req disconnectRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Container == "" {
		writeError(w, ContainerNotFound(""))
		return
	}
	err := s.b.Disconnect(r.Context(), api.NetworkDisconnect{Network: r.PathValue("id"), Sandbox: req.Container, Force: req.Force})
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// pruneNetworks is POST /networks/prune[?filters=]: the names removed.
func (s *Server) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	args, err := queryFilters(r)
	if err == nil {
		var names []string
		if names, err = s.b.PruneNetworks(r.Context(), args); err == nil {
			httplog.WriteJSON(w, http.StatusOK, pruneReport{NetworksDeleted: names})
			return
		}
	}
	writeError(w, err)
}
