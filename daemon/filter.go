package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-connections/nat"

	"berth/api"
	"berth/internal/filters"
	"berth/store"
)

// The filters of `network ls`, `sandbox ls`, `network prune` and `events`, matched on the
// API's views so /v1 and the Docker Engine API front end answer alike. Keys, semantics and
// error texts are dockerd 20.10's (Engine API 1.41), checked against it; the tests hold
// its answers. Every error here is a *filters.Error or a filterError: a 400.

// filterError is a filter value Docker rejects in words of its own (not "Invalid filter").
type filterError struct{ msg string }

func (e *filterError) Error() string { return e.msg }

// badFilter reports whether err is a client's bad filter: answered 400.
func badFilter(err error) bool {
	var fe *filterError
	return filters.Invalid(err) || errors.As(err, &fe)
}

// networkFilters are the keys of GET /networks (Docker's, less its internal idOrName).
var networkFilters = []string{"dangling", "driver", "id", "label", "name", "scope", "type"}

// networks is `network ls` with args: the views listNetworks builds, those that match.
func (d *daemon) networks(args filters.Args) ([]api.Network, error) {
	match, err := networkMatcher(args)
	if err != nil {
		return nil, err
	}
	snap := d.st.Snapshot()
	out := []api.Network{}
	for _, n := range snap.Networks() {
		if v := networkView(snap, n, d.localPeer()); match(v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// builtin is Docker's "predefined network" test, by name as Docker's is: the networks every
// daemon has and no one can remove.
func builtin(name string) bool {
	return name == "bridge" || name == "host" || name == "none"
}

// networkMatcher checks args and returns the test of one network.
//
// Docker (20.10): name and id are unanchored regular expressions (name=web lists web1 and
// myweb2; id=39c0 an ID with it inside), driver and scope exact, label KEY or KEY=VALUE all
// of them, type=custom|builtin any of them, dangling=true: user-defined networks with no
// sandbox, dangling=false: the others.
func networkMatcher(args filters.Args) (func(api.Network) bool, error) {
	if err := args.Validate(networkFilters...); err != nil {
		return nil, err
	}
	var wantCustom, wantBuiltin bool
	for _, t := range args.Get("type") {
		switch t {
		case "custom":
			wantCustom = true
		case "builtin":
			wantBuiltin = true
		default:
			return nil, &filterError{fmt.Sprintf("invalid filter: 'type'='%s'", t)}
		}
	}
	checkDangling, dangling := false, false
	if values := args.Get("dangling"); len(values) > 0 {
		if len(values) > 1 {
			return nil, &filterError{`got more than one value for filter key "dangling"`}
		}
		switch values[0] {
		case "true", "1":
			dangling = true
		case "false", "0":
		default:
			return nil, &filterError{`invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`}
		}
		checkDangling = true
	}
	return func(n api.Network) bool {
		if !args.ExactMatch("driver", n.Driver) || !args.Match("name", n.Name) || !args.Match("id", n.ID) ||
			!args.MatchKVList("label", n.Labels) || !args.ExactMatch("scope", n.Scope) {
			return false
		}
		isBuiltin := builtin(n.Name)
		if args.Contains("type") && !(wantBuiltin && isBuiltin || wantCustom && !isBuiltin) {
			return false
		}
		// Docker 20.10's list leaves Containers empty, so its dangling=true lists networks
		// with containers too; berth does what Docker documents: "not referenced by any
		// container" (nor, for a global network, by another host).
		unused := !isBuiltin && len(n.Containers) == 0 && len(n.Peers) == 0
		return !checkDangling || unused == dangling
	}, nil
}

// sandboxFilters are the keys of GET /sandboxes: docker ps's that apply to a netns.
var sandboxFilters = []string{"expose", "id", "label", "name", "network", "publish"}

// sandboxes is `sandbox ls` with args.
func (d *daemon) sandboxes(args filters.Args) ([]api.Sandbox, error) {
	match, err := sandboxMatcher(args)
	if err != nil {
		return nil, err
	}
	snap := d.st.Snapshot()
	out := []api.Sandbox{}
	for _, sb := range snap.Sandboxes() {
		if v := sandboxView(snap, sb); match(v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// sandboxMatcher checks args and returns the test of one sandbox.
//
// Docker's ps (20.10): name an unanchored regular expression (of the name with or without
// its "/"), id a prefix, label as networks', network a network's exact name or an ID prefix,
// publish a published host port, expose an exposed sandbox port: PORT[/PROTO] or a range,
// tcp by default, any of them.
func sandboxMatcher(args filters.Args) (func(api.Sandbox) bool, error) {
	if err := args.Validate(sandboxFilters...); err != nil {
		return nil, err
	}
	publish, err := portFilter(args, "publish")
	if err != nil {
		return nil, err
	}
	expose, err := portFilter(args, "expose")
	if err != nil {
		return nil, err
	}
	return func(sb api.Sandbox) bool {
		if !(args.Match("name", sb.Name) || args.Match("name", "/"+sb.Name)) || !args.FuzzyMatch("id", sb.ID) ||
			!args.MatchKVList("label", sb.Labels) {
			return false
		}
		if args.Contains("network") && !onNetwork(sb, args.Get("network")) {
			return false
		}
		if publish != nil && !publish.matchAny(hostPorts(sb)) {
			return false
		}
		if expose != nil && !expose.matchAny(keys(sb.ExposedPorts)) {
			return false
		}
		return true
	}, nil
}

// onNetwork: sb is on a network named one of refs, or whose ID starts with one.
func onNetwork(sb api.Sandbox, refs []string) bool {
	for _, ref := range refs {
		if _, ok := sb.Networks[ref]; ok {
			return true
		}
		for _, es := range sb.Networks {
			if strings.HasPrefix(es.NetworkID, ref) {
				return true
			}
		}
	}
	return false
}

// hostPorts are sb's published host ports as "PORT/PROTO".
func hostPorts(sb api.Sandbox) []string {
	var out []string
	for k, bindings := range sb.Ports {
		_, proto, _ := strings.Cut(k, "/")
		for _, b := range bindings {
			out = append(out, b.HostPort+"/"+proto)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// portRange is one publish or expose filter value: ports first..last of proto.
type portRange struct {
	first, last uint64
	proto       string
}

type portRanges []portRange

// portFilter reads key's values as docker ps does, with its error texts; nil when none.
func portFilter(args filters.Args, key string) (portRanges, error) {
	if !args.Contains(key) {
		return nil, nil
	}
	out := portRanges{}
	for _, value := range args.Get(key) {
		if strings.Contains(value, ":") {
			return nil, &filterError{fmt.Sprintf("filter for '%s' should not contain ':': %s", key, value)}
		}
		// dockerd 20.10's nat.SplitProtoPort: the proto ends at the next "/" ("80/udp/x" is
		// 80/udp, which nat v0.8.2 no longer reads so), and "/udp" has no port at all.
		port, proto, _ := strings.Cut(value, "/")
		if proto, _, _ = strings.Cut(proto, "/"); proto == "" {
			proto = "tcp"
		}
		first, last, err := nat.ParsePortRange(port)
		if err != nil {
			return nil, &filterError{fmt.Sprintf("error while looking up for %s %s: %s", key, value, err)}
		}
		out = append(out, portRange{first, last, proto})
	}
	return out, nil
}

// matchAny: one of ports ("PORT/PROTO") is in one of the ranges.
func (rs portRanges) matchAny(ports []string) bool {
	for _, p := range ports {
		num, proto, _ := strings.Cut(p, "/")
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			continue
		}
		for _, r := range rs {
			if r.proto == proto && r.first <= n && n <= r.last {
				return true
			}
		}
	}
	return false
}

// pruneFilters are the keys of POST /networks/prune.
var pruneFilters = []string{"label", "label!", "until"}

// pruneNetworks is `network prune` with args. Docker (20.10): until (a duration ago, a
// date or time, unix seconds) keeps the networks created after it; label KEY or KEY=VALUE
// prunes only networks with all of them; label! keeps those with all of its.
func (d *daemon) pruneNetworks(ctx context.Context, args filters.Args) ([]string, error) {
	match, err := pruneMatcher(args, time.Now())
	if err != nil {
		return nil, err
	}
	return d.mgr.PruneNetworks(ctx, match)
}

// pruneMatcher checks args and returns which unused networks prune removes.
func pruneMatcher(args filters.Args, now time.Time) (func(*store.Network) bool, error) {
	if err := args.Validate(pruneFilters...); err != nil {
		return nil, err
	}
	var until time.Time
	if values := args.Get("until"); len(values) > 0 {
		if len(values) > 1 {
			return nil, &filterError{"more than one until filter specified"}
		}
		t, err := filters.Timestamp(values[0], now)
		if err != nil {
			return nil, &filterError{err.Error()}
		}
		until = t
	}
	return func(n *store.Network) bool {
		if !until.IsZero() && n.Created.After(until) {
			return false
		}
		if !args.MatchKVList("label", n.Labels) {
			return false
		}
		return !args.Contains("label!") || !args.MatchKVList("label!", n.Labels)
	}, nil
}

// eventFilters are the keys of GET /events: berth's sandbox and Docker's. Keys of things
// berth has none of (image, volume, ...) are accepted and match no event, as in Docker.
var eventFilters = []string{"config", "container", "daemon", "event", "image", "label", "network", "node",
	"plugin", "sandbox", "scope", "secret", "service", "type", "volume"}

// eventTypes are the values of the type filter: berth's own and Docker's. container means
// sandbox (what berth has in its place).
var eventTypes = []string{"config", "container", "daemon", "image", "network", "node", "plugin",
	"sandbox", "secret", "service", "volume"}

// eventMatcher checks args and returns the test of one event. since and until are the
// stream's query parameters, not filters (Docker ignores them as filters).
//
// Docker (20.10): type and event (the action) exact, any of them; network a network's name
// or ID prefix, container (berth: sandbox) a sandbox's; keys of different kinds all match;
// label on the event's attributes (name, network, oldName). Docker's "destroy" is berth's
// "rm". Docker ignores keys it does not know; berth refuses them, and type and scope values
// it does not know, so a typo does not silently match everything or nothing.
func eventMatcher(args filters.Args) (func(api.Event) bool, error) {
	if err := args.Validate(eventFilters...); err != nil {
		return nil, err
	}
	for _, t := range args.Get("type") {
		if !slices.Contains(eventTypes, t) {
			return nil, &filters.Error{Key: "type", Values: []string{t}}
		}
	}
	for _, s := range args.Get("scope") {
		if s != "local" && s != "swarm" {
			return nil, &filters.Error{Key: "scope", Values: []string{s}}
		}
	}
	// Values of things berth has none of: any such filter matches nothing.
	for _, k := range []string{"config", "image", "node", "plugin", "secret", "service", "volume"} {
		if len(args.Get(k)) > 0 {
			return func(api.Event) bool { return false }, nil
		}
	}
	sandboxes := append(append([]string{}, args.Get("sandbox")...), args.Get("container")...)
	return func(ev api.Event) bool {
		typ := ev.Type
		// A sandbox's connect and disconnect are also network events: Docker's network
		// connect and disconnect, which a Docker client asks for with type=network.
		netChange := typ == "sandbox" && ev.Network != ""
		if !args.ExactMatch("type", typ) && !(typ == "sandbox" && args.ExactMatch("type", "container")) &&
			!(netChange && args.ExactMatch("type", "network")) {
			return false
		}
		if !args.ExactMatch("event", ev.Action) && !(ev.Action == "rm" && args.ExactMatch("event", "destroy")) {
			return false
		}
		if !args.ExactMatch("scope", "local") {
			return false
		}
		if len(sandboxes) > 0 && !(typ == "sandbox" && fuzzyAny(sandboxes, ev.ID, ev.Name)) {
			return false
		}
		if nets := args.Get("network"); len(nets) > 0 {
			// A sandbox's connect and disconnect name their network: berth's form of
			// Docker's network connect event.
			onNet := typ == "network" && fuzzyAny(nets, ev.ID, ev.Name) || typ == "sandbox" && fuzzyAny(nets, ev.Network)
			if !onNet {
				return false
			}
		}
		if d := args.Get("daemon"); len(d) > 0 && !(typ == "daemon" && fuzzyAny(d, ev.ID, ev.Name)) {
			return false
		}
		return args.MatchKVList("label", eventAttributes(ev))
	}, nil
}

// fuzzyAny: one of sources equals, or starts with, one of values.
func fuzzyAny(values []string, sources ...string) bool {
	a := filters.Args{"k": values}
	for _, s := range sources {
		if s != "" && a.FuzzyMatch("k", s) {
			return true
		}
	}
	return false
}

// eventAttributes is Docker's Actor.Attributes of ev: what the label filter looks at.
func eventAttributes(ev api.Event) map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{"name": ev.Name, "network": ev.Network, "oldName": ev.OldName} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}
