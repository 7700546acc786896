package netmgr

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/docker/go-connections/nat"

	"berth/store"
)

// PublishSpec is one binding a --publish (or --publish-all) value asks for. A range
// value gives one PublishSpec per port (-p 8000-8010:8000-8010 gives 11).
type PublishSpec struct {
	store.Port // HostPort 0: picked from the ephemeral range when the sockets are bound
	// HostPortEnd, when non-zero, makes HostPort-HostPortEnd a range to choose from: the
	// first free port of it is bound (-p 8000-8010:80, as Docker).
	HostPortEnd uint16
	Field       string // "publish" or "publish-all": what errors name
	Value       string // the value given (for publish-all, PORT/PROTO), what errors name
}

// parsePorts reads --publish, --expose and --publish-all with Docker's own parser
// (go-connections/nat), so that a spec means what it means to docker run. Published ports
// are also exposed, as in Docker: exp lists each (proto, port) once, the --expose ones
// first. With publishAll, every exposed port that no --publish binds gets an ephemeral
// host port on every address (Docker's -P).
func parsePorts(publish, expose []string, publishAll bool) (pub []PublishSpec, exp []store.Port, err error) {
	for _, s := range publish {
		ps, err := parsePublish(s)
		if err != nil {
			return nil, nil, err
		}
		pub = append(pub, ps...)
	}
	seen := map[store.Port]bool{}
	add := func(p store.Port) {
		p = store.Port{Proto: p.Proto, Port: p.Port}
		if !seen[p] {
			seen[p] = true
			exp = append(exp, p)
		}
	}
	for _, s := range expose {
		ps, err := parseExpose(s)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range ps {
			add(p)
		}
	}
	published := map[store.Port]bool{}
	for _, p := range pub {
		add(p.Port)
		published[store.Port{Proto: p.Proto, Port: p.Port.Port}] = true
	}
	if publishAll {
		for _, p := range exp {
			if !published[p] {
				pub = append(pub, PublishSpec{Port: p, Field: "publish-all", Value: fmt.Sprintf("%d/%s", p.Port, p.Proto)})
			}
		}
	}
	return pub, exp, nil
}

// parsePublish reads one --publish value, [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/PROTO], as
// docker run takes it ("80", "8080:80", "127.0.0.1:8000-8001:80-81/udp", "127.0.0.1::80",
// "[::1]:8080:80", "8000-8010:80"). nat's reasons are kept word for word: they are the
// Docker CLI's. Berth refuses what Docker takes but cannot do: sctp, and container port 0.
func parsePublish(s string) ([]PublishSpec, error) {
	ms, err := nat.ParsePortSpec(s)
	if err != nil {
		return nil, invalid("publish", s, "%v", err)
	}
	out := make([]PublishSpec, 0, len(ms))
	for _, m := range ms {
		p := PublishSpec{Field: "publish", Value: s}
		if p.Proto, p.Port.Port, err = natPort(m.Port); err != nil {
			return nil, invalid("publish", s, "%v", err)
		}
		if m.Binding.HostIP != "" {
			// nat has checked it with net.ParseIP; netip agrees on every such address.
			a, err := netip.ParseAddr(m.Binding.HostIP)
			if err != nil {
				return nil, invalid("publish", s, "invalid IP address: %s", m.Binding.HostIP)
			}
			// 0.0.0.0 and :: given explicitly stay: they bind one family only, as in Docker 28
			// (-p 0.0.0.0:8080:80 is IPv4 only, -p [::]:8080:80 IPv6 only).
			p.HostIP = a.Unmap()
		}
		if m.Binding.HostPort != "" {
			lo, hi, err := nat.ParsePortRangeToInt(m.Binding.HostPort)
			if err != nil { // nat made this string from numbers it parsed
				return nil, invalid("publish", s, "invalid hostPort: %s", m.Binding.HostPort)
			}
			switch {
			case lo == 0 && hi != 0:
				return nil, invalid("publish", s, "invalid hostPort: %s (a range of host ports starts at 1)", m.Binding.HostPort)
			case hi > lo:
				p.HostPort, p.HostPortEnd = uint16(lo), uint16(hi)
			default: // 0 is an ephemeral port, as in Docker
				p.HostPort = uint16(lo)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// natPort reads nat's "80/tcp" and refuses what berth cannot publish.
func natPort(p nat.Port) (proto string, port uint16, err error) {
	proto = p.Proto()
	if proto != "tcp" && proto != "udp" {
		return "", 0, fmt.Errorf("invalid proto: %s (berth has tcp and udp)", proto)
	}
	n := p.Int()
	if n == 0 {
		return "", 0, fmt.Errorf("invalid containerPort: %s (port 0 cannot be reached)", p.Port())
	}
	return proto, uint16(n), nil
}

// parseExpose reads one --expose value, PORT[-END][/PROTO], as the Docker CLI does: a
// range exposes every port of it.
func parseExpose(s string) ([]store.Port, error) {
	if strings.Contains(s, ":") {
		return nil, invalid("expose", s, "invalid port format")
	}
	proto, port := nat.SplitProtoPort(s)
	lo, hi, err := nat.ParsePortRange(port)
	if err != nil {
		return nil, invalid("expose", s, "invalid range format: %v", err)
	}
	out := make([]store.Port, 0, hi-lo+1)
	for n := lo; n <= hi; n++ {
		np, err := nat.NewPort(strings.ToLower(proto), strconv.FormatUint(n, 10))
		if err == nil {
			var p store.Port
			p.Proto, p.Port, err = natPort(np)
			out = append(out, p)
		}
		if err != nil {
			return nil, invalid("expose", s, "%v", err)
		}
	}
	return out, nil
}
