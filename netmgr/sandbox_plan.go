package netmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth/api"
	"berth/internal/nsutil"
	"berth/store"
)

// planSandbox validates every field of req before anything changes.
func (m *Manager) planSandbox(snap *store.Snapshot, req api.SandboxCreate) (*sandboxPlan, error) {
	sb := &store.Sandbox{ID: newID(), Name: req.Name, Hostname: req.Hostname, Mode: store.ModeBridge,
		State: store.StateCreating, Created: time.Now().UTC(),
		DNS: req.DNS, DNSSearch: req.DNSSearch, DNSOptions: req.DNSOptions, ExtraHosts: req.ExtraHosts}
	if sb.Name == "" {
		sb.Name = generateName(snap)
	}
	if err := checkName("name", sb.Name); err != nil {
		return nil, err
	}
	if _, err := snap.SandboxByName(sb.Name); err == nil {
		return nil, fmt.Errorf("sandbox name %q is already in use: %w", sb.Name, store.ErrConflict)
	}
	sb.NetNSPath = filepath.Join(m.cfg.NetNSDir, sb.Name)
	// Here, not when the files are written after the commit: a refused name changes nothing.
	if err := m.checkFilesDir(sb.Name); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.Name, err)
	}
	// A netns already named like the sandbox (`ip netns add X`, then CNI ADD for container
	// X with CNI_NETNS=/run/netns/X, as cnitool does) is adopted in place when it is the
	// netns being adopted; any other file there is someone else's.
	inPlace := false
	if _, err := os.Lstat(sb.NetNSPath); err == nil {
		if same, _ := nsutil.Same(sb.NetNSPath, req.NetNS); req.NetNS == "" || !same {
			return nil, invalid("name", sb.Name, "%s exists and is not a berth sandbox", sb.NetNSPath)
		}
		inPlace = true
	}
	sb.Domainname = req.Domainname
	for _, f := range []struct{ field, v string }{{"hostname", sb.Hostname}, {"domainname", sb.Domainname}} {
		if f.v == "" {
			continue
		}
		if err := checkDNSName(f.field, f.v); err != nil {
			return nil, err
		}
		if len(f.v) > maxUTSName {
			return nil, invalid(f.field, f.v, "longer than %d characters (the kernel's limit)", maxUTSName)
		}
	}
	if err := checkDNSSettings(req); err != nil {
		return nil, err
	}
	ep, err := parseEndpointReq(req.Aliases, req.IPv4, req.IPv6, req.MAC, req.Links)
	if err != nil {
		return nil, err
	}
	if err := planPorts(snap, sb, req); err != nil {
		return nil, err
	}
	for k, v := range req.Labels {
		if k == "" || strings.ContainsAny(k, "\n=") || strings.Contains(v, "\n") {
			return nil, invalid("label", k+"="+v, "want KEY=VALUE on one line")
		}
		if sb.Labels == nil {
			sb.Labels = map[string]string{}
		}
		sb.Labels[k] = v
	}
	if req.NetNS != "" {
		if err := m.checkAdopt(snap, req.NetNS); err != nil {
			return nil, err
		}
		sb.Adopted = req.NetNS
		if inPlace {
			sb.Adopted = sb.NetNSPath // the named file outlives a /proc/PID path to it
		}
	}
	p := &sandboxPlan{sb: sb, ep: ep}
	nets := req.Networks
	if len(nets) == 0 {
		nets = []string{DefaultNetwork}
	}
	if mode, arg, special := specialMode(nets[0]); special {
		return p, m.planSpecial(snap, p, nets, mode, arg)
	}
	for _, ref := range nets {
		if _, _, special := specialMode(ref); special {
			return nil, invalid("network", ref, "cannot be combined with other networks")
		}
		n, err := NetworkByRef(snap, ref)
		if err != nil {
			return nil, err
		}
		for _, o := range p.networks {
			if o.ID == n.ID {
				return nil, invalid("network", ref, "given twice")
			}
		}
		p.networks = append(p.networks, n)
	}
	if err := checkEndpointReq(snap, p.networks[0], sb, ep); err != nil {
		return nil, err
	}
	return p, nil
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

func (m *Manager) planSpecial(snap *store.Snapshot, p *sandboxPlan, nets []string, mode, arg string) error {
	if len(nets) > 1 {
		return invalid("network", nets[0], "cannot be combined with other networks")
	}
	e := p.ep
	if len(e.aliases) > 0 || e.ip4.IsValid() || e.ip6.IsValid() || e.mac != nil || len(e.links) > 0 {
		return invalid("network", nets[0], "--network-alias, --ip, --ip6, --mac-address and --link need a bridge network")
	}
	if len(p.sb.Ports) > 0 {
		return invalid("publish", nets[0], "port publishing needs a bridge network")
	}
	if p.sb.Adopted != "" {
		return invalid("netns", p.sb.Adopted, "an adopted netns joins bridge networks only")
	}
	p.sb.Mode = mode
	if mode == store.ModeContainer && (p.sb.Hostname != "" || p.sb.Domainname != "") {
		// As Docker: the names are the other sandbox's, whose UTS namespace is shared.
		return invalid("network", nets[0], "conflicting options: --hostname and --domainname cannot be used with container: networking")
	}
	if mode == store.ModeContainer {
		target, err := SandboxByRef(snap, arg)
		if err != nil {
			return invalid("network", nets[0], "no such sandbox %q", arg)
		}
		if target.Mode == store.ModeContainer {
			target, err = snap.Sandbox(target.Container)
			if err != nil {
				return invalid("network", nets[0], "sandbox %q shares a netns that is gone", arg)
			}
		}
		p.sb.Container = target.ID
		p.shared = target
	}
	return nil
}

// planPorts parses --publish and --expose and checks the host ports asked for against the
// other sandboxes' (holdPorts picks the rest). Published ports are also exposed, as in Docker.
func planPorts(snap *store.Snapshot, sb *store.Sandbox, req api.SandboxCreate) error {
	var pub []store.Port
	for _, s := range req.Publish {
		p, err := parsePublish(s)
		if err != nil {
			return err
		}
		pub = append(pub, p)
	}
	if err := checkHostPorts(snap, pub); err != nil {
		return err
	}
	sb.Ports = pub
	ports := pub
	seen := map[store.Port]bool{}
	add := func(p store.Port) {
		p = store.Port{Proto: p.Proto, Port: p.Port}
		if !seen[p] {
			seen[p] = true
			sb.Expose = append(sb.Expose, p)
		}
	}
	for _, s := range req.Expose {
		p, err := parseExpose(s)
		if err != nil {
			return err
		}
		add(p)
	}
	for _, p := range ports {
		add(p)
	}
	return nil
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

// generateName returns an unused readable name such as "swift_jetty" (then "swift_jetty2").
func generateName(snap *store.Snapshot) string {
	for i := 0; ; i++ {
		name := adjectives[rand.IntN(len(adjectives))] + "_" + nouns[rand.IntN(len(nouns))]
		if i > 20 {
			name += fmt.Sprint(rand.IntN(10000))
		}
		if _, err := snap.SandboxByName(name); errors.Is(err, store.ErrNotFound) {
			return name
		}
	}
}
