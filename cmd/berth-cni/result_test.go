package main

import (
	"encoding/json"
	"strings"
	"testing"

	"berth/api"
)

func sandboxOn(network string, es api.EndpointSettings) *api.Sandbox {
	return &api.Sandbox{Name: "web", Networks: map[string]api.EndpointSettings{network: es}}
}

func TestBuildResult(t *testing.T) {
	v4 := api.EndpointSettings{InterfaceName: "eth0", MacAddress: "02:42:0a:3c:00:02",
		IPAddress: "10.60.0.2", IPPrefixLen: 24, Gateway: "10.60.0.1"}
	dual := v4
	dual.GlobalIPv6Address, dual.GlobalIPv6PrefixLen, dual.IPv6Gateway = "fd00::2", 64, "fd00::1"
	only6 := api.EndpointSettings{InterfaceName: "eth0", MacAddress: "02:42:0a:3c:00:02",
		GlobalIPv6Address: "fd00::2", GlobalIPv6PrefixLen: 64, IPv6Gateway: "fd00::1"}
	for _, tc := range []struct {
		name string
		nw   api.Network
		es   api.EndpointSettings
		want string // the result as JSON
	}{
		{"user network", api.Network{Name: "app"}, v4,
			`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:42:0a:3c:00:02","sandbox":"/proc/1/ns/net"}],` +
				`"ips":[{"interface":0,"address":"10.60.0.2/24","gateway":"10.60.0.1"}],` +
				`"routes":[{"dst":"0.0.0.0/0","gw":"10.60.0.1"}],"dns":{"nameservers":["127.0.0.11"]}}`},
		{"internal network: no route", api.Network{Name: "back", Internal: true}, v4,
			`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:42:0a:3c:00:02","sandbox":"/proc/1/ns/net"}],` +
				`"ips":[{"interface":0,"address":"10.60.0.2/24","gateway":"10.60.0.1"}],"dns":{"nameservers":["127.0.0.11"]}}`},
		{"default bridge: no embedded DNS", api.Network{Name: "bridge"}, v4,
			`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:42:0a:3c:00:02","sandbox":"/proc/1/ns/net"}],` +
				`"ips":[{"interface":0,"address":"10.60.0.2/24","gateway":"10.60.0.1"}],` +
				`"routes":[{"dst":"0.0.0.0/0","gw":"10.60.0.1"}]}`},
		{"dual stack", api.Network{Name: "app"}, dual,
			`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:42:0a:3c:00:02","sandbox":"/proc/1/ns/net"}],` +
				`"ips":[{"interface":0,"address":"10.60.0.2/24","gateway":"10.60.0.1"},{"interface":0,"address":"fd00::2/64","gateway":"fd00::1"}],` +
				`"routes":[{"dst":"0.0.0.0/0","gw":"10.60.0.1"},{"dst":"::/0","gw":"fd00::1"}],"dns":{"nameservers":["127.0.0.11"]}}`},
		{"ipv6 only: the embedded DNS's IPv6 address", api.Network{Name: "app6"}, only6,
			`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:42:0a:3c:00:02","sandbox":"/proc/1/ns/net"}],` +
				`"ips":[{"interface":0,"address":"fd00::2/64","gateway":"fd00::1"}],` +
				`"routes":[{"dst":"::/0","gw":"fd00::1"}],"dns":{"nameservers":["fd62:6572:7468::11"]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := buildResult("/proc/1/ns/net", sandboxOn(tc.nw.Name, tc.es), &tc.nw)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := canonical(t, string(b)), canonical(t, tc.want); got != want {
				t.Errorf("result\n got %s\nwant %s", got, want)
			}
		})
	}
}

// canonical re-encodes a JSON document with sorted keys.
func canonical(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBuildResultErrors(t *testing.T) {
	if _, err := buildResult("/x", sandboxOn("app", api.EndpointSettings{}), &api.Network{Name: "other"}); err == nil ||
		!strings.Contains(err.Error(), "no endpoint on network other") {
		t.Errorf("missing endpoint: %v", err)
	}
	bad := api.EndpointSettings{InterfaceName: "eth0", IPAddress: "10.0.0.300", IPPrefixLen: 24}
	if _, err := buildResult("/x", sandboxOn("app", bad), &api.Network{Name: "app"}); err == nil {
		t.Errorf("bad address accepted")
	}
}
