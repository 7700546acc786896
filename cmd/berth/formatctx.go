package main

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"berth/api"
	"berth/store"
)

// The row contexts of the ls commands and of events: what {{.Field}} means in a --format.
// Each method returns what docker's own context returns for the field of the same name.

// Clock and zone of the rows: RunningFor counts from now, and sandbox CreatedAt is shown
// in the local zone as docker ps shows it. Tests pin both.
var (
	nowFunc   = time.Now
	localZone = time.Local
)

// networkFields documents the network ls fields in --help.
const networkFields = ".ID .Name .Driver .Scope .IPv4 .IPv6 .Internal .Labels .Label KEY .CreatedAt"

// networkLister is `network ls`, as docker/cli's network formatter.
var networkLister = &lister[api.Network]{
	table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
	raw:   [2]string{`network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n`, `network_id: {{.ID}}`},
	headers: map[string]string{
		"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
		"IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
	},
	row:      func(n api.Network, trunc bool) any { return &networkContext{n: n, trunc: trunc} },
	parseErr: "template parsing error",
	execErr:  "template parsing error",
}

// networkContext is one row of `network ls`.
type networkContext struct {
	n     api.Network
	trunc bool
}

func (c *networkContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }

// ID is the 12-character short ID, or the whole one with --no-trunc.
func (c *networkContext) ID() string       { return shortID(c.n.ID, c.trunc) }
func (c *networkContext) Name() string     { return c.n.Name }
func (c *networkContext) Driver() string   { return c.n.Driver }
func (c *networkContext) Scope() string    { return c.n.Scope }
func (c *networkContext) IPv4() string     { return strconv.FormatBool(c.n.EnableIPv4) }
func (c *networkContext) IPv6() string     { return strconv.FormatBool(c.n.EnableIPv6) }
func (c *networkContext) Internal() string { return strconv.FormatBool(c.n.Internal) }

// Labels is "k=v,k2=v2", sorted (docker's network ls leaves map order, its ps sorts).
func (c *networkContext) Labels() string          { return joinLabels(c.n.Labels) }
func (c *networkContext) Label(key string) string { return c.n.Labels[key] }

// CreatedAt is time.Time's String, as docker prints it: "2026-12-07 08:03:25.767705094 +0000 UTC".
func (c *networkContext) CreatedAt() string { return c.n.Created.String() }

// sandboxFields documents the sandbox ls fields in --help.
const sandboxFields = ".ID .Names (.Name) .Networks .IPAddresses .Ports .Labels .Label KEY .State .Status " +
	".CreatedAt .RunningFor .Hostname .NetworkMode"

// sandboxLister is `sandbox ls` and `ps`, with docker ps's field names where it has them.
var sandboxLister = &lister[api.Sandbox]{
	table: "table {{.ID}}\t{{.Names}}\t{{.Networks}}\t{{.IPAddresses}}\t{{.Ports}}",
	// docker ps's raw, with a sandbox's fields for the image and command it lacks.
	raw: [2]string{`sandbox_id: {{.ID}}\nnames: {{.Names}}\nnetworks: {{.Networks}}\ncreated_at: {{.CreatedAt}}\n` +
		`state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nlabels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n`,
		`sandbox_id: {{.ID}}`},
	headers: map[string]string{
		"ID": "SANDBOX ID", "Names": "NAMES", "Name": "NAME", "Networks": "NETWORKS",
		"IPAddresses": "IP ADDRESSES", "Ports": "PORTS", "Labels": "LABELS", "State": "STATE",
		"Status": "STATUS", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
		"Hostname": "HOSTNAME", "NetworkMode": "NETWORK MODE",
	},
	row:       func(sb api.Sandbox, trunc bool) any { return &sandboxContext{sb: sb, trunc: trunc} },
	quietWins: true,
	parseErr:  "template parsing error",
	execErr:   "template parsing error",
	precheck:  true,
}

// sandboxContext is one row of `sandbox ls`.
type sandboxContext struct {
	sb    api.Sandbox
	trunc bool
}

func (c *sandboxContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }

func (c *sandboxContext) ID() string { return shortID(c.sb.ID, c.trunc) }

// Names is docker ps's name column; a sandbox has one name, so it is Name.
func (c *sandboxContext) Names() string { return c.sb.Name }
func (c *sandboxContext) Name() string  { return c.sb.Name }

// Networks lists the networks in interface order (eth0 first), or the mode (none, host,
// container:NAME) when there are none.
func (c *sandboxContext) Networks() string {
	names, _ := sandboxNetworks(c.sb)
	if len(names) == 0 {
		return c.sb.NetworkMode
	}
	return strings.Join(names, ",")
}

// IPAddresses is berth's: every address in interface order, comma-separated.
func (c *sandboxContext) IPAddresses() string {
	_, addrs := sandboxNetworks(c.sb)
	return strings.Join(addrs, ",")
}

// Ports is docker ps's column: "7000/tcp, 0.0.0.0:8080->80/tcp".
func (c *sandboxContext) Ports() string           { return displayPorts(c.sb.Ports) }
func (c *sandboxContext) Labels() string          { return joinLabels(c.sb.Labels) }
func (c *sandboxContext) Label(key string) string { return c.sb.Labels[key] }

// State is berth's state of the sandbox: creating or ready.
func (c *sandboxContext) State() string { return c.sb.State }

// Status reads like docker ps's for a running container, since a ready sandbox is wired
// and up: "Up 5 minutes"; any other state is shown as is.
func (c *sandboxContext) Status() string {
	if c.sb.State != store.StateReady {
		return c.sb.State
	}
	return "Up " + humanDuration(nowFunc().Sub(c.sb.Created))
}

// CreatedAt is docker ps's: whole seconds, local zone.
func (c *sandboxContext) CreatedAt() string {
	return time.Unix(c.sb.Created.Unix(), 0).In(localZone).String()
}

// RunningFor is docker ps's CREATED column: "5 minutes ago".
func (c *sandboxContext) RunningFor() string {
	return humanDuration(nowFunc().Sub(c.sb.Created)) + " ago"
}

func (c *sandboxContext) Hostname() string    { return c.sb.Hostname }
func (c *sandboxContext) NetworkMode() string { return c.sb.NetworkMode }

// shortID is store.ShortID unless trunc is off.
func shortID(id string, trunc bool) string {
	if trunc {
		return store.ShortID(id)
	}
	return id
}

// joinLabels is "k=v,k2=v2" in key order.
func joinLabels(labels map[string]string) string {
	kvs := make([]string, 0, len(labels))
	for k, v := range labels {
		kvs = append(kvs, k+"="+v)
	}
	slices.Sort(kvs)
	return strings.Join(kvs, ",")
}

// portSummary is one port as docker's container list has it.
type portSummary struct {
	ip      netip.Addr // invalid for an exposed-only port
	private int
	public  int
	proto   string
}

// displayPorts is docker/cli's DisplayablePorts: ports published to the same port number
// and exposed ports are grouped into ranges per host address, ports published elsewhere
// are listed one by one at the end.
func displayPorts(ports map[string][]api.PortBinding) string {
	var list []portSummary
	for key, bindings := range ports {
		p, proto, _ := strings.Cut(key, "/")
		private, err := strconv.Atoi(p)
		if err != nil {
			continue // not a port berth made; nothing to show
		}
		if len(bindings) == 0 {
			list = append(list, portSummary{private: private, proto: proto})
		}
		for _, b := range bindings {
			ip, _ := netip.ParseAddr(b.HostIP)
			public, _ := strconv.Atoi(b.HostPort)
			list = append(list, portSummary{ip: ip, private: private, public: public, proto: proto})
		}
	}
	slices.SortFunc(list, func(a, b portSummary) int {
		return cmp.Or(cmp.Compare(a.private, b.private), a.ip.Compare(b.ip),
			cmp.Compare(a.public, b.public), strings.Compare(a.proto, b.proto))
	})
	type group struct{ first, last int }
	groups := map[string]*group{}
	var keys, result, mappings []string
	for _, p := range list {
		key := p.proto
		if p.ip.IsValid() {
			if p.public != p.private {
				mappings = append(mappings, fmt.Sprintf("%s->%d/%s",
					net.JoinHostPort(p.ip.String(), strconv.Itoa(p.public)), p.private, p.proto))
				continue
			}
			key = p.ip.String() + "/" + p.proto
		}
		g := groups[key]
		switch {
		case g == nil:
			groups[key] = &group{p.private, p.private}
			keys = append(keys, key)
		case p.private == g.last+1:
			g.last = p.private
		default:
			result = append(result, formGroup(key, g.first, g.last))
			groups[key] = &group{p.private, p.private}
		}
	}
	for _, k := range keys {
		result = append(result, formGroup(k, groups[k].first, groups[k].last))
	}
	return strings.Join(append(result, mappings...), ", ")
}

// formGroup prints one range: "7000-7001/tcp", or "127.0.0.1:9000-9001->9000-9001/udp".
func formGroup(key string, first, last int) string {
	ip, proto, ok := strings.Cut(key, "/")
	if !ok {
		ip, proto = "", key
	}
	r := strconv.Itoa(first)
	if first != last {
		r += "-" + strconv.Itoa(last)
	}
	if ip != "" {
		r = net.JoinHostPort(ip, r) + "->" + r
	}
	return r + "/" + proto
}

// humanDuration is docker's go-units HumanDuration: "Less than a second", "1 second",
// "About a minute", "3 hours", ...
func humanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < 1 {
		return "Less than a second"
	} else if seconds == 1 {
		return "1 second"
	} else if seconds < 60 {
		return fmt.Sprintf("%d seconds", seconds)
	} else if minutes := int(d.Minutes()); minutes == 1 {
		return "About a minute"
	} else if minutes < 60 {
		return fmt.Sprintf("%d minutes", minutes)
	} else if hours := int(d.Hours() + 0.5); hours == 1 {
		return "About an hour"
	} else if hours < 48 {
		return fmt.Sprintf("%d hours", hours)
	} else if hours < 24*7*2 {
		return fmt.Sprintf("%d days", hours/24)
	} else if hours < 24*30*2 {
		return fmt.Sprintf("%d weeks", hours/24/7)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// eventContext is what `events --format` runs over: berth's event fields (.Time, .Type,
// .Action, .ID, .Name, .Network, .OldName) and docker's (.Actor.ID, .Actor.Attributes.name,
// .Scope, .TimeNano), so templates written for either work. Docker's .Time is Unix
// seconds; here it stays berth's time (use .TimeNano for a number).
type eventContext struct {
	api.Event
	Actor    eventActor `json:"Actor"`
	Scope    string     `json:"scope"`
	TimeNano int64      `json:"timeNano"`
}

// eventActor is docker's events.Actor: the object's ID and its attributes.
type eventActor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// newEventContext fills docker's fields from berth's event; the attributes are the ones
// the default line shows, under the same names (docker's rename also says oldName).
func newEventContext(ev api.Event) eventContext {
	attrs := map[string]string{}
	for k, v := range map[string]string{"name": ev.Name, "network": ev.Network, "oldName": ev.OldName} {
		if v != "" {
			attrs[k] = v
		}
	}
	return eventContext{Event: ev, Actor: eventActor{ID: ev.ID, Attributes: attrs}, Scope: "local",
		TimeNano: ev.Time.UnixNano()}
}
