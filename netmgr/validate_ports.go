package netmgr

import (
	"net/netip"
	"strconv"
	"strings"

	"berth/store"
)

// parsePorts reads --publish and --expose. Published ports are also exposed, as in
// Docker: exp lists each (proto, port) once, the --expose ones first.
func parsePorts(publish, expose []string) (pub, exp []store.Port, err error) {
	for _, s := range publish {
		p, err := parsePublish(s)
		if err != nil {
			return nil, nil, err
		}
		pub = append(pub, p)
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
		p, err := parseExpose(s)
		if err != nil {
			return nil, nil, err
		}
		add(p)
	}
	for _, p := range pub {
		add(p)
	}
	return pub, exp, nil
}

// parsePublish reads one --publish value: [HOST_IP:][HOST_PORT:]PORT[/PROTO], as docker run
// takes it ("80", "8080:80", "127.0.0.1:8080:80/udp", "127.0.0.1::80", "[::1]:8080:80").
// A zero HostPort is picked later from the ephemeral range; a zero HostIP means every
// address of the daemon's netns, of both families.
func parsePublish(s string) (store.Port, error) {
	spec, proto, err := splitProto("publish", s)
	if err != nil {
		return store.Port{}, err
	}
	p := store.Port{Proto: proto}
	var host, hostPort, port string
	if strings.HasPrefix(spec, "[") { // [v6]:hostport:port
		end := strings.Index(spec, "]")
		if end < 0 {
			return p, invalid("publish", s, "unterminated [IPv6 address]")
		}
		host, spec = spec[1:end], strings.TrimPrefix(spec[end+1:], ":")
		hostPort, port, _ = strings.Cut(spec, ":")
	} else {
		parts := strings.Split(spec, ":")
		switch len(parts) {
		case 1:
			port = parts[0]
		case 2:
			hostPort, port = parts[0], parts[1]
		case 3:
			host, hostPort, port = parts[0], parts[1], parts[2]
		default:
			return p, invalid("publish", s, "want [HOST_IP:][HOST_PORT:]PORT[/tcp|/udp]")
		}
	}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return p, invalid("publish", s, "host IP %q is not an IP address", host)
		}
		// 0.0.0.0 and :: given explicitly stay: they bind one family only, as in Docker 28
		// (-p 0.0.0.0:8080:80 is IPv4 only, -p [::]:8080:80 IPv6 only).
		p.HostIP = a.Unmap()
	}
	if p.Port, err = parsePortNum("publish", s, port); err != nil {
		return p, err
	}
	if hostPort != "" {
		if p.HostPort, err = parsePortNum("publish", s, hostPort); err != nil {
			return p, err
		}
	}
	return p, nil
}

// parseExpose reads one --expose value: PORT[/PROTO].
func parseExpose(s string) (store.Port, error) {
	spec, proto, err := splitProto("expose", s)
	if err != nil {
		return store.Port{}, err
	}
	port, err := parsePortNum("expose", s, spec)
	return store.Port{Proto: proto, Port: port}, err
}

func splitProto(field, s string) (spec, proto string, err error) {
	spec, proto, ok := strings.Cut(s, "/")
	if !ok {
		return spec, "tcp", nil
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return "", "", invalid(field, s, "protocol must be tcp or udp")
	}
	return spec, proto, nil
}

func parsePortNum(field, whole, s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, invalid(field, whole, "port %q is not a number between 1 and 65535", s)
	}
	return uint16(n), nil
}
