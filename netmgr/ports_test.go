package netmgr

import (
	"errors"
	"strconv"
	"testing"

	"berth/api"
	"berth/netmgr/store"
)

func TestParsePublish(t *testing.T) {
	cases := []struct {
		in   string
		want string // proto hostip hostport port, "" for an error naming publish
	}{
		{"80", "tcp invalid IP 0 80"},
		{"8080:80", "tcp invalid IP 8080 80"},
		{"8080:80/udp", "udp invalid IP 8080 80"},
		{"127.0.0.1:8080:80", "tcp 127.0.0.1 8080 80"},
		{"127.0.0.1::80/UDP", "udp 127.0.0.1 0 80"},
		{"0.0.0.0:8080:80", "tcp invalid IP 8080 80"},
		{"[::1]:8080:80", "tcp ::1 8080 80"},
		{"0", ""},
		{"70000", ""},
		{"80/sctp", ""},
		{"1.2.3:80:80", ""},
		{"a:b:c:d", ""},
		{"8080-8081:80", ""},
		{"[::1:80", ""},
	}
	for _, tc := range cases {
		p, err := parsePublish(tc.in)
		if tc.want == "" {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "publish" {
				t.Errorf("parsePublish(%q) err = %v, want an invalid publish", tc.in, err)
			}
			continue
		}
		got := p.Proto + " " + p.HostIP.String() + " " + itoa(p.HostPort) + " " + itoa(p.Port)
		if err != nil || got != tc.want {
			t.Errorf("parsePublish(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }

func TestPublishAllocation(t *testing.T) {
	m, _ := newTestManager(t)
	a, _ := mustSandbox(t, m, api.SandboxCreate{Name: "a", Publish: []string{"8080:80", "53/udp"}, Expose: []string{"9000"}})
	lo, _ := ephemeralRange()
	if len(a.Ports) != 2 || a.Ports[0].HostPort != 8080 || a.Ports[1].HostPort != lo || a.Ports[1].Proto != "udp" {
		t.Fatalf("ports = %+v, want 8080->80/tcp and %d->53/udp", a.Ports, lo)
	}
	if len(a.Expose) != 3 {
		t.Errorf("expose = %+v, want 9000/tcp, 80/tcp, 53/udp", a.Expose)
	}
	b, _ := mustSandbox(t, m, api.SandboxCreate{Name: "b", Publish: []string{"53/udp", "8080/udp"}})
	if b.Ports[0].HostPort == lo {
		t.Errorf("host port %d handed out twice", lo)
	}
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "c", Publish: []string{"8080:81"}})
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Field != "publish" {
		t.Errorf("taken host port: err = %v, want invalid publish", err)
	}
	_, err = m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "c", Networks: []string{"host"}, Publish: []string{"80"}})
	if !errors.As(err, &ie) || ie.Field != "publish" {
		t.Errorf("publish on host mode: err = %v, want invalid publish", err)
	}
	// Removing a sandbox frees its host ports.
	if err := m.RemoveSandbox(t.Context(), "a", true); err != nil {
		t.Fatal(err)
	}
	c, _ := mustSandbox(t, m, api.SandboxCreate{Name: "c", Publish: []string{"8080:81"}})
	if c.Ports[0] != (store.Port{Proto: "tcp", HostPort: 8080, Port: 81}) {
		t.Errorf("after rm: %+v", c.Ports)
	}
}
