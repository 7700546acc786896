package main

import (
	"net/http"
	"strings"
	"testing"

	"berth/api"
)

func TestSandboxRequests(t *testing.T) {
	id := strings.Repeat("cd", 32)
	twoNets := api.Sandbox{ID: id, Name: "web", NetworkMode: "app", Networks: map[string]api.EndpointSettings{
		"back": {InterfaceName: "eth10", IPAddress: "10.0.0.2", GlobalIPv6Address: "fd00::2"},
		"app":  {InterfaceName: "eth9", IPAddress: "172.18.0.2"},
	}}
	runRequestCases(t, []requestCase{
		{
			name:       "create default",
			args:       []string{"sandbox", "create"},
			reply:      api.IDResponse{ID: id, Name: "quirky_turing"},
			wantMethod: "POST", wantPath: "/v1/sandboxes",
			wantBody: `{}`,
			wantOut:  id + "\n",
		},
		{
			name: "create all flags",
			args: []string{"sandbox", "create", "--name", "db", "-h", "dbhost", "--network", "app",
				"--network", "back", "--network-alias", "database", "--network-alias", "pg",
				"--ip", "172.18.0.50", "--ip6", "fd00::50", "--mac-address", "02:42:ac:12:00:32",
				"--link", "web:w", "--dns", "1.1.1.1", "--dns", "8.8.8.8", "--dns-search", "example.com",
				"--dns-option", "ndots:2", "--add-host", "gw:10.0.0.1", "--add-host", "v6:fd00::1", "--domainname", "corp.example"},
			reply:      api.IDResponse{ID: id, Name: "db"},
			wantMethod: "POST", wantPath: "/v1/sandboxes",
			wantBody: `{"Name":"db","Hostname":"dbhost","Domainname":"corp.example","Networks":["app","back"],"Aliases":["database","pg"],
				"IPv4Address":"172.18.0.50","IPv6Address":"fd00::50","MacAddress":"02:42:ac:12:00:32",
				"Links":["web:w"],"Dns":["1.1.1.1","8.8.8.8"],"DnsSearch":["example.com"],
				"DnsOptions":["ndots:2"],"ExtraHosts":["gw:10.0.0.1","v6:fd00::1"]}`,
			wantOut: id + "\n",
		},
		{
			name:       "labels keep their commas",
			args:       []string{"sandbox", "create", "--label", "a=1,b=2", "--label", "empty=", "--label", "c=x=y"},
			reply:      api.IDResponse{ID: id},
			wantMethod: "POST", wantPath: "/v1/sandboxes",
			wantBody: `{"Labels":{"a":"1,b=2","c":"x=y","empty":""}}`,
			wantOut:  id + "\n",
		},
		{
			name:       "create special network and long hostname flag",
			args:       []string{"sandbox", "create", "--hostname", "h", "--network", "container:web"},
			reply:      api.IDResponse{ID: id},
			wantMethod: "POST", wantPath: "/v1/sandboxes",
			wantBody: `{"Hostname":"h","Networks":["container:web"]}`,
			wantOut:  id + "\n",
		},
		{
			name:       "rm force",
			args:       []string{"sandbox", "rm", "-f", "web"},
			wantMethod: "DELETE", wantPath: "/v1/sandboxes/web?force=1",
			wantOut: "web\n",
		},
		{
			name:       "rm",
			args:       []string{"sandbox", "remove", "web"},
			wantMethod: "DELETE", wantPath: "/v1/sandboxes/web",
			wantOut: "web\n",
		},
		{
			name:       "rename",
			args:       []string{"sandbox", "rename", "web", "front"},
			wantMethod: "POST", wantPath: "/v1/sandboxes/web/rename",
			wantBody: `{"Name":"front"}`,
		},
		{
			name:       "ls table in interface order",
			args:       []string{"sandbox", "ls"},
			reply:      []api.Sandbox{twoNets, {ID: id, Name: "lonely", NetworkMode: "none"}},
			wantMethod: "GET", wantPath: "/v1/sandboxes",
			wantOut: "SANDBOX ID     NAMES     NETWORKS   IP ADDRESSES                  PORTS\n" +
				id[:12] + "   web       app,back   172.18.0.2,10.0.0.2,fd00::2   \n" +
				id[:12] + "   lonely    none                                     \n",
		},
		{
			name:       "inspect",
			args:       []string{"sandbox", "inspect", "--format", "{{.Name}} {{join .DNS \",\"}}", "web"},
			reply:      api.Sandbox{Name: "web", DNS: []string{"1.1.1.1", "9.9.9.9"}},
			wantMethod: "GET", wantPath: "/v1/sandboxes/web",
			wantOut: "web 1.1.1.1,9.9.9.9\n",
		},
	})
}

func TestSandboxErrors(t *testing.T) {
	runErrorCases(t, []errorCase{
		{name: "create takes no operands", args: []string{"sandbox", "create", "web"},
			wantErr: `unknown command "web" for "berth sandbox create"`},
		{name: "label without value", args: []string{"sandbox", "create", "--label", "=v"},
			wantErr: `invalid argument "=v" for "--label" flag: want KEY=VALUE`},
		{name: "rename one arg", args: []string{"sandbox", "rename", "web"},
			wantErr: `"berth sandbox rename" requires exactly 2 argument(s): OLD NEW`},
		{name: "run without command", args: []string{"run", "--rm"},
			wantErr: `"berth run" requires at least 1 argument(s): CMD [ARG...]`},
		{name: "exec without command", args: []string{"exec", "web", "--"},
			wantErr: `"berth exec" requires a command after SANDBOX`},
		{name: "exec without sandbox", args: []string{"exec"},
			wantErr: `"berth exec" requires at least 2 argument(s): SANDBOX CMD [ARG...]`},
	})
}

// `berth run` takes every create flag; a refused create runs nothing and removes nothing.
func TestRunCreateRefused(t *testing.T) {
	f := newFakeDaemon(t)
	f.status, f.reply = http.StatusConflict, api.Error{Message: `sandbox name "web" is already in use`}
	_, errOut, code := runCLI(t, f.host, "run", "--rm", "--name", "web", "--network", "app",
		"--dns", "1.1.1.1", "--", "ping", "-c1", "x")
	if code != 1 || errOut != "sandbox name \"web\" is already in use\n" {
		t.Errorf("got exit %d, stderr %q", code, errOut)
	}
	if len(f.calls) != 1 {
		t.Fatalf("got %d requests, want only the create", len(f.calls))
	}
	want := `{"Name":"web","Networks":["app"],"Dns":["1.1.1.1"]}`
	if c := f.calls[0]; c.Path != "/v1/sandboxes" || !sameJSON(t, c.Body, want) {
		t.Errorf("got %s %s; want POST /v1/sandboxes %s", c.Method, c.Body, want)
	}
}

// Flags after SANDBOX (or after CMD in run) belong to the command, not to berth.
func TestCommandArgsKeepTheirFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "web", "--", "ping", "-c1", "x"}, "web|ping -c1 x"},
		{[]string{"exec", "web", "ip", "-br", "a"}, "web|ip -br a"},
		{[]string{"exec", "web", "--", "sh", "--", "-x"}, "web|sh -- -x"},
	} {
		root := newRootCmd(nil, nil)
		cmd, rest, err := root.Find(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		a := cmd.Flags().Args()
		if got := a[0] + "|" + strings.Join(commandArgs(a[1:]), " "); got != tc.want {
			t.Errorf("%v: got %q; want %q", tc.args, got, tc.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	if code, err := exitCode(nil); code != 0 || err != nil {
		t.Errorf("got %d, %v; want 0, nil", code, err)
	}
}
