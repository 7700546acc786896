package netmgr

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"berth/netmgr/store"
)

// parsePublish reads one --publish value: [HOST_IP:][HOST_PORT:]PORT[/PROTO], as docker run
// takes it ("80", "8080:80", "127.0.0.1:8080:80/udp", "127.0.0.1::80", "[::1]:8080:80").
// A zero HostPort is picked later from the ephemeral range.
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
		if !a.Unmap().IsUnspecified() {
			p.HostIP = a.Unmap()
		}
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

// ephemeralRange is the kernel's local port range, the pool Docker also picks host ports
// from; 32768-60999 (the kernel default) if it cannot be read.
func ephemeralRange() (lo, hi uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && l > 0 && l <= h && h <= 65535 {
				return uint16(l), uint16(h)
			}
		}
	}
	return 32768, 60999
}

// portsInUse lists the host ports (per protocol) published by every sandbox in snap.
func portsInUse(snap *store.Snapshot) map[string]store.Port {
	used := map[string]store.Port{}
	for _, sb := range snap.PublishingSandboxes() {
		for _, p := range sb.Ports {
			used[fmt.Sprintf("%s/%d", p.Proto, p.HostPort)] = p
		}
	}
	return used
}

// assignHostPorts checks the requested host ports against every other sandbox's and picks
// free ones for the -p PORT form. Two bindings of one host port and protocol conflict even
// on different host IPs: one DNAT rule per port keeps the ruleset simple to reason about.
func assignHostPorts(snap *store.Snapshot, ports []store.Port) ([]store.Port, error) {
	if len(ports) == 0 {
		return nil, nil
	}
	used := portsInUse(snap)
	key := func(p store.Port) string { return fmt.Sprintf("%s/%d", p.Proto, p.HostPort) }
	out := make([]store.Port, 0, len(ports))
	for _, p := range ports {
		if p.HostPort != 0 {
			if _, taken := used[key(p)]; taken {
				return nil, invalid("publish", fmt.Sprintf("%d/%s", p.HostPort, p.Proto), "host port already published by another sandbox")
			}
			used[key(p)] = p
		}
		out = append(out, p)
	}
	lo, hi := ephemeralRange()
	next := lo
	for i := range out {
		if out[i].HostPort != 0 {
			continue
		}
		for ; ; next++ {
			cand := out[i]
			cand.HostPort = next
			if _, taken := used[key(cand)]; !taken {
				out[i] = cand
				used[key(cand)] = cand
				break
			}
			if next == hi {
				return nil, fmt.Errorf("no free host port left in %d-%d: %w", lo, hi, store.ErrConflict)
			}
		}
	}
	return out, nil
}
