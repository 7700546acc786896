package main

import (
	"net/http"
	"strings"
	"testing"

	"berth/api"
)

func TestNetworkRequests(t *testing.T) {
	id := strings.Repeat("ab", 32)
	runRequestCases(t, []requestCase{
		{
			name:       "create minimal",
			args:       []string{"network", "create", "app"},
			reply:      api.IDResponse{ID: id},
			wantMethod: "POST", wantPath: "/v1/networks",
			wantBody: `{"Name":"app","Driver":"bridge"}`,
			wantOut:  id + "\n",
		},
		{
			name: "create all flags",
			args: []string{"network", "create", "--subnet", "172.30.0.0/24", "--subnet", "fd00::/64",
				"--gateway", "172.30.0.1", "--ip-range", "172.30.0.128/25", "--ip-range", "fd00::8000:0:0:0/65",
				"--aux-address", "printer=172.30.0.5", "--attachable", "--internal", "--ipv6",
				"-o", "com.docker.network.bridge.name=br-back", "--opt", "com.docker.network.driver.mtu=1400",
				"--label", "a=b", "--label", "empty=", "back"},
			reply:      api.IDResponse{ID: id},
			wantMethod: "POST", wantPath: "/v1/networks",
			wantBody: `{"Name":"back","Driver":"bridge","Subnets":["172.30.0.0/24","fd00::/64"],
				"Gateways":["172.30.0.1"],"IPRanges":["172.30.0.128/25","fd00::8000:0:0:0/65"],
				"AuxAddresses":{"printer":"172.30.0.5"},"Internal":true,"EnableIPv6":true,"Attachable":true,
				"Options":{"com.docker.network.bridge.name":"br-back","com.docker.network.driver.mtu":"1400"},
				"Labels":{"a":"b","empty":""}}`,
			wantOut: id + "\n",
		},
		{
			name:       "create ipv6-only",
			args:       []string{"network", "create", "--ipv4=false", "--ipv6", "v6"},
			reply:      api.IDResponse{ID: id},
			wantMethod: "POST", wantPath: "/v1/networks",
			wantBody: `{"Name":"v6","Driver":"bridge","EnableIPv4":false,"EnableIPv6":true}`,
			wantOut:  id + "\n",
		},
		{
			name:       "create ipv4 explicit",
			args:       []string{"network", "create", "--ipv4", "v4"},
			reply:      api.IDResponse{ID: id},
			wantMethod: "POST", wantPath: "/v1/networks",
			wantBody: `{"Name":"v4","Driver":"bridge","EnableIPv4":true}`,
			wantOut:  id + "\n",
		},
		{
			name:       "create config-only and config-from",
			args:       []string{"network", "create", "--config-only", "--config-from", "cfg", "x"},
			reply:      api.IDResponse{ID: id},
			wantMethod: "POST", wantPath: "/v1/networks",
			wantBody: `{"Name":"x","Driver":"bridge","ConfigOnly":true,"ConfigFrom":"cfg"}`,
			wantOut:  id + "\n",
		},
		{
			name:       "rm escapes ref",
			args:       []string{"network", "rm", "a b"},
			wantMethod: "DELETE", wantPath: "/v1/networks/a%20b",
			wantOut: "a b\n",
		},
		{
			name:       "prune",
			args:       []string{"network", "prune", "-f"},
			reply:      api.PruneResponse{Deleted: []string{"app", "back"}},
			wantMethod: "POST", wantPath: "/v1/networks/prune",
			wantOut: "app\nback\n",
		},
		{
			name: "connect",
			args: []string{"network", "connect", "--alias", "api", "--alias", "web2", "--ip", "10.0.0.5",
				"--ip6", "fd00::5", "--link", "db:database", "--link", "cache", "back", "web"},
			wantMethod: "POST", wantPath: "/v1/networks/back/connect",
			wantBody: `{"Container":"web","Aliases":["api","web2"],"IPv4Address":"10.0.0.5",
				"IPv6Address":"fd00::5","Links":["db:database","cache"]}`,
		},
		{
			name:       "disconnect force",
			args:       []string{"network", "disconnect", "-f", "back", "web"},
			wantMethod: "POST", wantPath: "/v1/networks/back/disconnect",
			wantBody: `{"Container":"web","Force":true}`,
		},
		{
			name:       "ls quiet",
			args:       []string{"network", "ls", "-q"},
			reply:      []api.Network{{ID: id, Name: "app"}},
			wantMethod: "GET", wantPath: "/v1/networks",
			wantOut: id[:12] + "\n",
		},
		{
			name:       "ls template",
			args:       []string{"network", "ls", "--format", "{{.Name}} {{.Driver}} {{json .Labels}}"},
			reply:      []api.Network{{ID: id, Name: "app", Driver: "bridge", Labels: map[string]string{"k": "v"}}},
			wantMethod: "GET", wantPath: "/v1/networks",
			wantOut: "app bridge \"k=v\"\n", // docker's .Labels is a string
		},
		{
			name:       "ls table",
			args:       []string{"network", "ls"},
			reply:      []api.Network{{ID: id, Name: "app", Driver: "bridge", Scope: "local"}},
			wantMethod: "GET", wantPath: "/v1/networks",
			wantOut: "NETWORK ID     NAME      DRIVER    SCOPE\n" + id[:12] + "   app       bridge    local\n",
		},
		{
			name:       "inspect format",
			args:       []string{"network", "inspect", "-f", "{{.Name}}", "app"},
			reply:      api.Network{ID: id, Name: "app"},
			wantMethod: "GET", wantPath: "/v1/networks/app",
			wantOut: "app\n",
		},
	})
}

func TestNetworkErrors(t *testing.T) {
	runErrorCases(t, []errorCase{
		{
			name:    "aux-address without =",
			args:    []string{"network", "create", "--aux-address", "10.0.0.5", "x"},
			wantErr: `invalid aux-address "10.0.0.5": want KEY=VALUE`,
		},
		{name: "bad opt", args: []string{"network", "create", "-o", "novalue", "x"},
			wantErr: `invalid opt "novalue": want KEY=VALUE`},
		{name: "bad label", args: []string{"network", "create", "--label", "=v", "x"},
			wantErr: `invalid label "=v": want KEY=VALUE`},
		{name: "no name", args: []string{"network", "create"},
			wantErr: `"berth network create" requires exactly 1 argument(s): NAME`},
		{name: "unknown flag", args: []string{"network", "create", "--bogus", "x"},
			wantErr: `unknown flag: --bogus`},
		{name: "connect one arg", args: []string{"network", "connect", "back"},
			wantErr: `"berth network connect" requires exactly 2 argument(s): NETWORK SANDBOX`},
		{name: "bad template", args: []string{"network", "ls", "--format", "{{.Nope"},
			wantErr: `template parsing error: template: :1: unclosed action`},
	})
}

// Docker's inspect prints what it found, one line per missing ref on stderr, and exits 1.
func TestNetworkInspectPartial(t *testing.T) {
	f := newFakeDaemon(t)
	f.reply = api.Network{Name: "app", Containers: map[string]api.NetworkContainer{}}
	out, _, code := runCLI(t, f.host, "network", "inspect", "app")
	if code != 0 || !strings.HasPrefix(out, "[\n    {\n        \"Name\": \"app\",") {
		t.Fatalf("got exit %d, stdout %q; want a 4-space indented array", code, out)
	}

	f.status, f.reply = http.StatusNotFound, api.Error{Message: `network "nope" not found`}
	out, errOut, code := runCLI(t, f.host, "network", "inspect", "nope", "gone")
	if code != 1 || out != "[]\n" {
		t.Errorf("got exit %d, stdout %q; want 1, []", code, out)
	}
	if want := "network \"nope\" not found\nnetwork \"nope\" not found\n"; errOut != want {
		t.Errorf("got stderr %q; want %q", errOut, want)
	}
}

func TestDaemonErrorIsOneLine(t *testing.T) {
	f := newFakeDaemon(t)
	f.status, f.reply = http.StatusBadRequest, api.Error{Message: `invalid subnet "10.1.0.0/33": prefix length out of range`}
	_, errOut, code := runCLI(t, f.host, "network", "create", "--subnet", "10.1.0.0/33", "x")
	if code != 1 || errOut != "invalid subnet \"10.1.0.0/33\": prefix length out of range\n" {
		t.Errorf("got exit %d, stderr %q", code, errOut)
	}
}

func TestUnreachableDaemon(t *testing.T) {
	host := "unix://" + t.TempDir() + "/none.sock"
	_, errOut, code := runCLI(t, host, "network", "rm", "a", "b")
	want := "cannot connect to the berth daemon at " + host + ": is it running?\n"
	if code != 1 || errOut != want {
		t.Errorf("got exit %d, stderr %q; want 1, %q", code, errOut, want)
	}
	t.Setenv("BERTH_CERT_PATH", "")
	_, errOut, _ = runCLI(t, "tcp://1.2.3.4:5", "network", "ls")
	if want := "invalid host \"tcp://1.2.3.4:5\": tcp:// needs mutual TLS: --tlscacert, --tlscert and --tlskey (or BERTH_CERT_PATH)\n"; errOut != want {
		t.Errorf("got stderr %q; want %q", errOut, want)
	}
	_, errOut, _ = runCLI(t, "ftp://1.2.3.4:5", "network", "ls")
	if want := "invalid host \"ftp://1.2.3.4:5\": want unix://PATH or tcp://HOST:PORT\n"; errOut != want {
		t.Errorf("got stderr %q; want %q", errOut, want)
	}
}

func TestHostFromEnv(t *testing.T) {
	t.Setenv("BERTH_HOST", "unix:///tmp/x.sock")
	if got := defaultHost(); got != "unix:///tmp/x.sock" {
		t.Errorf("got %q; want BERTH_HOST", got)
	}
	t.Setenv("BERTH_HOST", "")
	if got := defaultHost(); got != "unix:///run/berth/berth.sock" {
		t.Errorf("got %q; want the default socket", got)
	}
}
