package netmgr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// describeSpecs writes bindings as "tcp 127.0.0.1:8000-8010->80" (":0" an ephemeral port,
// no address: every address), for tables.
func describeSpecs(ps []PublishSpec) string {
	var out []string
	for _, p := range ps {
		host := ""
		if p.HostIP.IsValid() {
			host = p.HostIP.String()
			if p.HostIP.Is6() {
				host = "[" + host + "]"
			}
		}
		hp := fmt.Sprint(p.HostPort)
		if p.HostPortEnd != 0 {
			hp += fmt.Sprintf("-%d", p.HostPortEnd)
		}
		out = append(out, fmt.Sprintf("%s %s:%s->%d", p.Proto, host, hp, p.Port.Port))
	}
	return strings.Join(out, ", ")
}

// TestParsePublishLikeDocker: each spec as docker run -p took it (the oracle, dockerd
// 20.10 with its CLI 20.10.24, and the 28.2.2 CLI, whose go-connections words berth's
// reasons are; 20.10 writes them capitalised: "Invalid containerPort: abc"), and berth's
// answer. docker is what `docker inspect` showed as NetworkSettings.Ports, or the error.
func TestParsePublishLikeDocker(t *testing.T) {
	cases := []struct {
		in, want, docker string
	}{
		{"80", "tcp :0->80", `"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"32777"},{"HostIp":"::",...}]`},
		{"8080:80", "tcp :8080->80", `"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}]`},
		{"0:80", "tcp :0->80", `"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"32775"},...]: host port 0 is an ephemeral one`},
		{"80/", "tcp :0->80", `"80/tcp": ephemeral`},
		{"080", "tcp :0->80", `"80/tcp": ephemeral`},
		{":80", "tcp :0->80", `"80/tcp": ephemeral`},
		{"8080:80/TCP", "tcp :8080->80", `"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"},...]`},
		{"127.0.0.1::80", "tcp 127.0.0.1:0->80", `"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"32769"}]`},
		{"8000-8001:80-81", "tcp :8000->80, tcp :8001->81", `"80/tcp":[...8000...],"81/tcp":[...8001...]`},
		{"127.0.0.1:8000-8001:80-81", "tcp 127.0.0.1:8000->80, tcp 127.0.0.1:8001->81", `accepted`},
		{"8000-8010:8000-8010", "tcp :8000->8000, tcp :8001->8001, tcp :8002->8002, tcp :8003->8003, tcp :8004->8004, " +
			"tcp :8005->8005, tcp :8006->8006, tcp :8007->8007, tcp :8008->8008, tcp :8009->8009, tcp :8010->8010", `accepted`},
		// HostConfig.PortBindings "80/udp":[{"HostIp":"","HostPort":"8000-8010"}]: one port of the range.
		{"8000-8010:80/udp", "udp :8000-8010->80", `"80/udp":[{"HostIp":"0.0.0.0","HostPort":"8001"},...] (8000 was held)`},
		{"[::1]:8080:80", "tcp [::1]:8080->80", `accepted`},
		{"0.0.0.0:8080:80", "tcp 0.0.0.0:8080->80", `accepted`},
		{"[::]:8080:80", "tcp [::]:8080->80", `accepted`},
		{"65535", "tcp :0->65535", `accepted`},
		{"::1:8080:80", "tcp [::1]:8080->80", `28: accepted; 20.10: Invalid ip address ::1: address ::1:: too many colons in address`},
		// Docker takes these and berth cannot do them.
		{"80:0", `invalid publish "80:0": invalid containerPort: 0 (port 0 cannot be reached)`, `"0/tcp":[{"HostIp":"0.0.0.0","HostPort":"80"},...]`},
		{"0", `invalid publish "0": invalid containerPort: 0 (port 0 cannot be reached)`, `"0/tcp":[{"HostIp":"0.0.0.0","HostPort":"32776"},...]`},
		{"80/sctp", `invalid publish "80/sctp": invalid proto: sctp (berth has tcp and udp)`, `created; start: Error starting userland proxy: protocol not supported`},
		{"0-10:80", `invalid publish "0-10:80": invalid hostPort: 0-10 (a range of host ports starts at 1)`, `not asked`},
		{"fe80::1%eth0:80:80", `invalid publish "fe80::1%eth0:80:80": invalid IP address: fe80::1%eth0`, `not asked`},
		// Docker refuses these.
		{"8000-8010:80-81", `invalid publish "8000-8010:80-81": invalid ranges specified for container and host Ports: 80-81 and 8000-8010`,
			`invalid ranges specified for container and host Ports: 80-81 and 8000-8010`},
		{"80/foo", `invalid publish "80/foo": invalid proto: foo`, `invalid proto: foo`},
		{"abc", `invalid publish "abc": invalid containerPort: abc`, `invalid containerPort: abc`},
		{"70000", `invalid publish "70000": invalid containerPort: 70000`, `invalid containerPort: 70000`},
		{"65536", `invalid publish "65536": invalid containerPort: 65536`, `Invalid containerPort: 65536`},
		{"-1", `invalid publish "-1": invalid containerPort: -1`, `Invalid containerPort: -1`},
		{"80-", `invalid publish "80-": invalid containerPort: 80-`, `Invalid containerPort: 80-`},
		{"-80", `invalid publish "-80": invalid containerPort: -80`, `Invalid containerPort: -80`},
		{" 80", `invalid publish " 80": invalid containerPort:  80`, `Invalid containerPort:  80`},
		{"80-79", `invalid publish "80-79": invalid containerPort: 80-79`, `invalid containerPort: 80-79`},
		{"8000-7000:80", `invalid publish "8000-7000:80": invalid hostPort: 8000-7000`, `invalid hostPort: 8000-7000`},
		{"1.2.3:80:80", `invalid publish "1.2.3:80:80": invalid IP address: 1.2.3`, `invalid IP address: 1.2.3`},
		{"a:b:c:d", `invalid publish "a:b:c:d": invalid IP address: a:b`, `20.10: Invalid ip address a:b: address a:b:: too many colons in address`},
		{"8080:", `invalid publish "8080:": no port specified: 8080:<empty>`, `no port specified: 8080:<empty>`},
		{"/tcp", `invalid publish "/tcp": no port specified: /tcp<empty>`, `no port specified: /tcp<empty>`},
		{"[::1:80", `invalid publish "[::1:80": invalid IP address [:: address [::: missing ']' in address`, `not asked`},
	}
	for _, tc := range cases {
		ps, err := parsePublish(tc.in)
		got := describeSpecs(ps)
		if err != nil {
			got = err.Error()
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "publish" || ie.Value != tc.in {
				t.Errorf("%q: error %v does not name publish %q", tc.in, err, tc.in)
			}
		}
		if got != tc.want {
			t.Errorf("-p %q (docker: %s)\ngot  %s\nwant %s", tc.in, tc.docker, got, tc.want)
		}
	}
}

// TestParseExposeLikeDocker: --expose as docker run took it (the oracle), and berth's
// answer: ports, or the error.
func TestParseExposeLikeDocker(t *testing.T) {
	cases := []struct {
		in, want, docker string
	}{
		{"7000-7002", "7000/tcp 7001/tcp 7002/tcp", `ExposedPorts "7000/tcp":{},"7001/tcp":{},"7002/tcp":{}; Ports "7000/tcp":null,...`},
		{"7000-7002/udp", "7000/udp 7001/udp 7002/udp", `accepted`},
		{"80-80", "80/tcp", `accepted`},
		{"80/UDP", "80/udp", `not asked`},
		{"7000-6000", `invalid expose "7000-6000": invalid range format: invalid port range: 7000-6000`,
			`invalid range format for --expose: 7000-6000, error: invalid range specified for port: 7000-6000`},
		{"abc", `invalid expose "abc": invalid range format: invalid start port 'abc': invalid syntax`,
			`invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax`},
		{"70000", `invalid expose "70000": invalid range format: invalid start port '70000': value out of range (0–65535)`,
			`invalid range format for --expose: 70000, error: strconv.ParseUint: parsing "70000": value out of range`},
		{"", `invalid expose "": invalid range format: empty string specified for ports`,
			`invalid range format for --expose: , error: Empty string specified for ports`},
		{"1.2.3.4:80", `invalid expose "1.2.3.4:80": invalid port format`, `invalid port format for --expose: 1.2.3.4:80`},
		{"80:90", `invalid expose "80:90": invalid port format`, `invalid port format for --expose: 80:90`},
		// Docker takes these (and does nothing with them); berth refuses what it cannot publish.
		{"80/foo", `invalid expose "80/foo": invalid proto: foo (berth has tcp and udp)`, `accepted`},
		{"80/sctp", `invalid expose "80/sctp": invalid proto: sctp (berth has tcp and udp)`, `accepted`},
		{"0", `invalid expose "0": invalid containerPort: 0 (port 0 cannot be reached)`, `accepted`},
	}
	for _, tc := range cases {
		ps, err := parseExpose(tc.in)
		var got []string
		for _, p := range ps {
			got = append(got, fmt.Sprintf("%d/%s", p.Port, p.Proto))
		}
		g := strings.Join(got, " ")
		if err != nil {
			g = err.Error()
		}
		if g != tc.want {
			t.Errorf("--expose %q (docker: %s)\ngot  %s\nwant %s", tc.in, tc.docker, g, tc.want)
		}
	}
}

// TestParsePortsPublishAll: -P publishes every exposed port that no -p binds, on an
// ephemeral port of every address; a -p binding stays the only one of its port. The
// oracle, docker run -P --expose 7000-7002 --expose 90/udp -p 8080:80 -p 127.0.0.1::81:
// 7000-7002/tcp and 90/udp on 0.0.0.0 and :: ephemeral ports, 80/tcp on 8080 only, 81/tcp
// on 127.0.0.1 only; -P with nothing exposed publishes nothing (Ports {}).
func TestParsePortsPublishAll(t *testing.T) {
	pub, exp, err := parsePorts([]string{"8080:80", "127.0.0.1::81"}, []string{"7000-7002", "90/udp", "80"}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "tcp :8080->80, tcp 127.0.0.1:0->81, tcp :0->7000, tcp :0->7001, tcp :0->7002, udp :0->90"
	if got := describeSpecs(pub); got != want {
		t.Errorf("publish\ngot  %s\nwant %s", got, want)
	}
	if pub[2].Field != "publish-all" || pub[2].Value != "7000/tcp" {
		t.Errorf("-P binding names %s %q, want publish-all \"7000/tcp\"", pub[2].Field, pub[2].Value)
	}
	var got []string
	for _, p := range exp {
		got = append(got, fmt.Sprintf("%d/%s", p.Port, p.Proto))
	}
	if g, w := strings.Join(got, " "), "7000/tcp 7001/tcp 7002/tcp 90/udp 80/tcp 81/tcp"; g != w {
		t.Errorf("expose %s, want %s", g, w)
	}
	if pub, _, err := parsePorts(nil, nil, true); err != nil || len(pub) != 0 {
		t.Errorf("-P alone: %v, %v; want nothing published", pub, err)
	}
	if pub, _, _ := parsePorts(nil, []string{"7000"}, false); len(pub) != 0 {
		t.Errorf("--expose without -P published %v", pub)
	}
}
