package daemon

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

// getJSON fetches path from h and returns the reply re-encoded compactly with sorted keys.
func getJSON(t *testing.T, path string) string {
	t.Helper()
	w := httptest.NewRecorder()
	testServer(t).ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	var v any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestNetworkView(t *testing.T) {
	zero := `"Created":"0001-01-01T00:00:00Z"`
	for _, tc := range []struct {
		ref, want string
	}{
		{"app", `{"Attachable":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{"` + webID + `":{"EndpointID":"` + strings.Repeat("e", 64) +
			`","IPv4Address":"172.18.0.2/16","IPv6Address":"","MacAddress":"02:42:ac:12:00:02","Name":"web"}},` +
			zero + `,"Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,` +
			`"IPAM":{"Config":[{"Gateway":"172.18.0.1","Subnet":"172.18.0.0/16"}],"Driver":"default","Options":{}},` +
			`"Id":"` + appID + `","Ingress":false,"Internal":false,"Labels":{},"Name":"App",` +
			`"Options":{"com.docker.network.bridge.name":"br-abc1"},"Scope":"local"}`},
		{"back", `{"Attachable":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},` + zero + `,"Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,` +
			`"IPAM":{"Config":[{"Gateway":"10.9.0.1","IPRange":"10.9.0.128/25","Subnet":"10.9.0.0/24"}],"Driver":"default","Options":{}},` +
			`"Id":"` + backID + `","Ingress":false,"Internal":true,"Labels":{"tier":"db"},"Name":"back",` +
			`"Options":{"com.docker.network.bridge.name":"br-abc2"},"Scope":"local"}`},
	} {
		if got := getJSON(t, "/v1/networks/"+tc.ref); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.ref, got, tc.want)
		}
	}
}

func TestSandboxView(t *testing.T) {
	want := `{"Created":"0001-01-01T00:00:00Z","Dns":["1.1.1.1"],"DnsOptions":[],"DnsSearch":[],` +
		`"Domainname":"","ExposedPorts":{},"ExtraHosts":[],` +
		`"Files":{"hosts":{"Modified":false,"Path":"/etc/netns/web/hosts"},"resolv.conf":{"Modified":false,"Path":"/etc/netns/web/resolv.conf"}},` +
		`"Hostname":"","HostsPath":"/etc/netns/web/hosts","Id":"` + webID + `","Labels":{},"Name":"web",` +
		`"NetworkMode":"App","Networks":{"App":{"Aliases":["www"],"DNSNames":["web","www"],` +
		`"EndpointID":"` + strings.Repeat("e", 64) + `","Gateway":"172.18.0.1",` +
		`"GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"IPAddress":"172.18.0.2","IPPrefixLen":16,"IPv6Gateway":"",` +
		`"InterfaceName":"eth0","Links":["db:database","cache:cache"],"MacAddress":"02:42:ac:12:00:02",` +
		`"NetworkID":"` + appID + `"}},"Ports":{},"ResolvConfPath":"/etc/netns/web/resolv.conf",` +
		`"SandboxKey":"/run/netns/web","State":"ready"}`
	if got := getJSON(t, "/v1/sandboxes/web"); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	if got := getJSON(t, "/v1/sandboxes"); got != "["+want+"]" {
		t.Errorf("list:\n got %s\nwant [%s]", got, want)
	}
}
