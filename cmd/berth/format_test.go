package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"testing"
	"time"

	"berth/api"
)

func TestParseKeyValues(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    map[string]string
		wantErr string
	}{
		{in: nil, want: nil},
		{in: []string{"a=b", "c=", "d=e=f", "a=z"}, want: map[string]string{"a": "z", "c": "", "d": "e=f"}},
		{in: []string{"a=b", "noeq"}, wantErr: `invalid opt "noeq": want KEY=VALUE`},
		{in: []string{"=v"}, wantErr: `invalid opt "=v": want KEY=VALUE`},
		{in: []string{" =v"}, wantErr: `invalid opt " =v": want KEY=VALUE`},
	} {
		got, err := parseKeyValues("opt", tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%q: got err %v; want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// formatCase is one CLI run against a fake daemon answering reply, with the exact stdout,
// stderr and exit code. Unless a case says otherwise, want* is what docker printed for the
// same objects and flags: the oracle's dockerd 20.10 with the docker 28.2.2 CLI
// (/usr/local/bin/docker) and Debian's 20.10.24 CLI (/usr/bin/docker), on 2026-12-07.
type formatCase struct {
	name     string
	args     []string
	reply    any
	wantOut  string
	wantErr  string
	wantCode int
}

func runFormatCases(t *testing.T, cases []formatCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.reply = tc.reply
			out, errOut, code := runCLI(t, f.host, tc.args...)
			if out != tc.wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s\n(%q; want %q)", out, tc.wantOut, out, tc.wantOut)
			}
			if errOut != tc.wantErr || code != tc.wantCode {
				t.Errorf("got stderr %q, exit %d; want %q, %d", errOut, code, tc.wantErr, tc.wantCode)
			}
		})
	}
}

// oracleNetworks are the oracle's networks: app (--label b=2 --label a=1 --subnet
// 10.5.0.0/24 ...), back (--internal --ipv6) and docker's own three.
func oracleNetworks(t *testing.T) []api.Network {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	return []api.Network{
		{ID: "858ac2ebe81556d9530a4d93552cb4dba4810ac3fed74e4369a21c8d5116c3d4", Name: "app", Driver: "bridge",
			Scope: "local", Labels: map[string]string{"a": "1", "b": "2"}, Created: at("2026-12-07T08:03:25.767705094Z")},
		{ID: "811e0d4ddb63da7ef69ce5b978d7f218903691643a3afe276cf461924788ec3f", Name: "back", Driver: "bridge",
			Scope: "local", EnableIPv6: true, Internal: true, Created: at("2026-12-07T08:03:25.85378911Z")},
		{ID: "f500c2704357ef8a7c7e40d8e5bfc459cfa63da371738630f96e4f716dac829c", Name: "bridge", Driver: "bridge",
			Scope: "local", Created: at("2026-12-07T08:03:10.899854853Z")},
		{ID: "6d8388802523418c7328ab47ce29fdb2b7a16cfb69acfa9e65c1ca5f72481c4a", Name: "host", Driver: "host",
			Scope: "local", Created: at("2026-12-07T08:03:10.888224922Z")},
		{ID: "47d9229b7d284de0a9857732b21f626855bbe2cee052ef23b96908093edf61ad", Name: "none", Driver: "null",
			Scope: "local", Created: at("2026-12-07T08:03:10.879732376Z")},
	}
}

// TestNetworkLsFormat: `network ls` with docker's defaults, -q, --no-trunc, table, json,
// functions, escapes and errors.
func TestNetworkLsFormat(t *testing.T) {
	nets := oracleNetworks(t)
	app := nets[:1]
	ls := func(args ...string) []string { return append([]string{"network", "ls"}, args...) }
	runFormatCases(t, []formatCase{
		{name: "default table", args: ls(), reply: nets, wantOut: "" +
			"NETWORK ID     NAME      DRIVER    SCOPE\n" +
			"858ac2ebe815   app       bridge    local\n" +
			"811e0d4ddb63   back      bridge    local\n" +
			"f500c2704357   bridge    bridge    local\n" +
			"6d8388802523   host      host      local\n" +
			"47d9229b7d28   none      null      local\n"},
		{name: "table keyword", args: ls("--format", "table"), reply: nets[3:], wantOut: "" +
			"NETWORK ID     NAME      DRIVER    SCOPE\n" +
			"6d8388802523   host      host      local\n" +
			"47d9229b7d28   none      null      local\n"},
		{name: "no-trunc", args: ls("--no-trunc"), reply: nets[:2], wantOut: "" +
			"NETWORK ID                                                         NAME      DRIVER    SCOPE\n" +
			"858ac2ebe81556d9530a4d93552cb4dba4810ac3fed74e4369a21c8d5116c3d4   app       bridge    local\n" +
			"811e0d4ddb63da7ef69ce5b978d7f218903691643a3afe276cf461924788ec3f   back      bridge    local\n"},
		{name: "quiet", args: ls("-q"), reply: nets, wantOut: "858ac2ebe815\n811e0d4ddb63\nf500c2704357\n6d8388802523\n47d9229b7d28\n"},
		// docker network ls: a custom format wins over -q (docker ps does the opposite).
		{name: "quiet with format", args: ls("-q", "--format", "{{.Name}}"), reply: app, wantOut: "app\n"},
		{name: "escaped tab", args: ls("--format", `{{.Name}}\t{{.Driver}}|`), reply: nets, wantOut: "" +
			"app\tbridge|\nback\tbridge|\nbridge\tbridge|\nhost\thost|\nnone\tnull|\n"},
		{name: "escaped newline", args: ls("--format", `x\ny\t{{.Name}}`), reply: app, wantOut: "x\ny\tapp\n"},
		{name: "spaces trimmed", args: ls("--format", "  {{.Name}}  "), reply: app, wantOut: "app\n"},
		{name: "table of every field", reply: nets,
			args: ls("--format", `table {{.Name}}\t{{.IPv6}}\t{{.Internal}}\t{{.Labels}}\t{{.Label "a"}}\t{{.CreatedAt}}`),
			wantOut: "" +
				"NAME      IPV6      INTERNAL   LABELS    a         CREATED AT\n" +
				"app       false     false      a=1,b=2   1         2026-12-07 08:03:25.767705094 +0000 UTC\n" +
				"back      true      true                           2026-12-07 08:03:25.85378911 +0000 UTC\n" +
				"bridge    false     false                          2026-12-07 08:03:10.899854853 +0000 UTC\n" +
				"host      false     false                          2026-12-07 08:03:10.888224922 +0000 UTC\n" +
				"none      false     false                          2026-12-07 08:03:10.879732376 +0000 UTC\n"},
		{name: "table no-trunc ID", args: ls("--no-trunc", "--format", `table {{.Name}}\t{{.ID}}`), reply: app, wantOut: "" +
			"NAME      NETWORK ID\n" +
			"app       858ac2ebe81556d9530a4d93552cb4dba4810ac3fed74e4369a21c8d5116c3d4\n"},
		// The header line runs with docker's header functions: upper, json and truncate leave
		// the column name alone, pad pads it, .Label "a" heads its column "a".
		{name: "functions and header", reply: app,
			args:    ls("--format", `table {{upper .Name}}|{{json .Name}}|{{.Label "a"}}|{{truncate .Name 1}}|{{pad .Name 1 1}}`),
			wantOut: "NAME|NAME|a|NAME| NAME \nAPP|\"app\"|1|a| app \n"},
		{name: "missing label", args: ls("--format", `{{.Label "nope"}}|{{.Labels}}|`), reply: nets[1:2], wantOut: "||\n"},
		{name: "empty table", args: ls("--format", "table {{.Name}}"), reply: []api.Network{}, wantOut: "NAME\n"},
		{name: "empty plain", args: ls("--format", "{{.Name}}"), reply: []api.Network{}, wantOut: ""},
		// Docker prints its header even when the field does not exist, if no row tried it.
		{name: "empty table unknown field", args: ls("--format", "table {{.Nope}}"), reply: []api.Network{},
			wantOut: "<no value>\n"},
		// Docker 28's json (20.10's CLI printed the word json per row); IPv4 is false here
		// because the oracle's 20.10 engine sends no EnableIPv4.
		{name: "json", args: ls("--format", "json"), reply: nets[:2], wantOut: "" +
			`{"CreatedAt":"2026-12-07 08:03:25.767705094 +0000 UTC","Driver":"bridge","ID":"858ac2ebe815","IPv4":"false","IPv6":"false","Internal":"false","Labels":"a=1,b=2","Name":"app","Scope":"local"}` + "\n" +
			`{"CreatedAt":"2026-12-07 08:03:25.85378911 +0000 UTC","Driver":"bridge","ID":"811e0d4ddb63","IPv4":"false","IPv6":"true","Internal":"true","Labels":"","Name":"back","Scope":"local"}` + "\n"},
		{name: "json func", args: ls("--format", "{{json .}}"), reply: nets[4:], wantOut: "" +
			`{"CreatedAt":"2026-12-07 08:03:10.879732376 +0000 UTC","Driver":"null","ID":"47d9229b7d28","IPv4":"false","IPv6":"false","Internal":"false","Labels":"","Name":"none","Scope":"local"}` + "\n"},
		// Docker's words, but berth's Go type: docker says *network.networkContext.
		{name: "raw", args: ls("--format", "raw"), reply: app,
			wantOut: "network_id: 858ac2ebe815\nname: app\ndriver: bridge\nscope: local\n\n"},
		{name: "raw quiet", args: ls("--format", "raw", "-q"), reply: app, wantOut: "network_id: 858ac2ebe815\n"},
		{name: "unknown field", args: ls("--format", "{{.Nope}}"), reply: nets, wantCode: 1,
			wantErr: `template parsing error: template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type *main.networkContext` + "\n"},
		{name: "unclosed action", args: ls("--format", "{{.Name"), wantCode: 1,
			wantErr: "template parsing error: template: :1: unclosed action\n"},
	})
}

// oracleSandbox is the oracle's `docker run -d --name web --network app -p 8080:80 -p
// 127.0.0.1:9000-9001:9000-9001/udp --expose 7000 --label z=1 --label a=2`, then `network
// connect back web`, as a berth sandbox.
func oracleSandbox() api.Sandbox {
	return api.Sandbox{
		ID: "36d16db3be010c71942999bbff4bcfaa3c7c93799c274ddab30381be5165554a", Name: "web", State: "ready",
		Created: time.Date(2026, 12, 7, 8, 3, 58, 400e6, time.UTC), NetworkMode: "app",
		Networks: map[string]api.EndpointSettings{
			"app":  {InterfaceName: "eth0", IPAddress: "10.5.0.128"},
			"back": {InterfaceName: "eth1", IPAddress: "172.18.0.2", GlobalIPv6Address: "fd00:1::2"},
		},
		Labels: map[string]string{"z": "1", "a": "2"},
		Ports: map[string][]api.PortBinding{
			"80/tcp":   {{HostIP: "0.0.0.0", HostPort: "8080"}, {HostIP: "::", HostPort: "8080"}},
			"7000/tcp": {},
			"9000/udp": {{HostIP: "127.0.0.1", HostPort: "9000"}},
			"9001/udp": {{HostIP: "127.0.0.1", HostPort: "9001"}},
		},
	}
}

// pinClock makes RunningFor and CreatedAt deterministic: now is 1.6 s after web's creation,
// and the zone UTC, as in the oracle.
func pinClock(t *testing.T) {
	now, zone := nowFunc, localZone
	nowFunc = func() time.Time { return time.Date(2026, 12, 7, 8, 4, 0, 0, time.UTC) }
	localZone = time.UTC
	t.Cleanup(func() { nowFunc, localZone = now, zone })
}

// TestSandboxLsFormat: `sandbox ls` / `ps` with docker ps's field names.
func TestSandboxLsFormat(t *testing.T) {
	pinClock(t)
	web := oracleSandbox()
	none := api.Sandbox{ID: "4f0a9b50958592d7b704c3e386eacbd87cc4965501b70553306e51672668528c", Name: "idle",
		NetworkMode: "none", State: "creating", Created: time.Date(2026, 12, 7, 8, 3, 59, 0, time.UTC)}
	sbs := []api.Sandbox{web, none}
	runFormatCases(t, []formatCase{
		// berth's default table (docker ps's has IMAGE and COMMAND, which sandboxes lack).
		{name: "default table", args: []string{"sandbox", "ls"}, reply: sbs, wantOut: "" +
			"SANDBOX ID     NAMES     NETWORKS   IP ADDRESSES                      PORTS\n" +
			"36d16db3be01   web       app,back   10.5.0.128,172.18.0.2,fd00:1::2   7000/tcp, 127.0.0.1:9000-9001->9000-9001/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp\n" +
			"4f0a9b509585   idle      none                                         \n"},
		// docker 28.2.2 (20.10.24 printed :::8080 for the IPv6 binding).
		{name: "docker ps fields", reply: []api.Sandbox{web},
			args:    []string{"ps", "--format", `{{.Names}}|{{.Networks}}|{{.Ports}}|{{.Labels}}|{{.Label "z"}}|{{.Label "nope"}}|{{.CreatedAt}}`},
			wantOut: "web|app,back|7000/tcp, 127.0.0.1:9000-9001->9000-9001/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp|a=2,z=1|1||2026-12-07 08:03:58 +0000 UTC\n"},
		{name: "table with label header", args: []string{"ps", "--format", `table {{.Names}}\t{{.Labels}}\t{{.Label "z"}}`},
			reply: []api.Sandbox{web}, wantOut: "NAMES     LABELS    z\nweb       a=2,z=1   1\n"},
		// berth's own: State is the sandbox's, Status reads like a running container's.
		{name: "state status running for", reply: sbs,
			args: []string{"ps", "--format", `table {{.ID}}\t{{.State}}\t{{.Status}}\t{{.RunningFor}}`},
			wantOut: "" +
				"SANDBOX ID     STATE      STATUS        CREATED\n" +
				"36d16db3be01   ready      Up 1 second   1 second ago\n" +
				"4f0a9b509585   creating   creating      1 second ago\n"},
		{name: "no-trunc", args: []string{"ps", "--no-trunc", "--format", "{{.ID}}"}, reply: sbs,
			wantOut: web.ID + "\n" + none.ID + "\n"},
		{name: "quiet", args: []string{"ps", "-q"}, reply: sbs, wantOut: "36d16db3be01\n4f0a9b509585\n"},
		// docker 28.2.2: -q wins over a custom format, with this warning (20.10.24 let the
		// format win).
		{name: "quiet wins", args: []string{"ps", "-q", "--format", "{{.Names}}"}, reply: sbs,
			wantOut: "36d16db3be01\n4f0a9b509585\n",
			wantErr: "WARNING: Ignoring custom format, because both --format and --quiet are set.\n"},
		{name: "json", args: []string{"ps", "--format", "json"}, reply: []api.Sandbox{none}, wantOut: `{"CreatedAt":"2026-12-07 08:03:59 +0000 UTC",` +
			`"Hostname":"","ID":"4f0a9b509585","IPAddresses":"","Labels":"","Name":"idle","Names":"idle","NetworkMode":"none",` +
			`"Networks":"none","Ports":"","RunningFor":"1 second ago","State":"creating","Status":"creating"}` + "\n"},
		// docker ps's raw has image and command where a sandbox has its networks; labels
		// sorted (docker 28.2.2: labels: a=2,z=1; 20.10.24: z=1,a=2).
		{name: "raw", args: []string{"ps", "--format", "raw"}, reply: sbs, wantOut: "" +
			"sandbox_id: 36d16db3be01\nnames: web\nnetworks: app,back\ncreated_at: 2026-12-07 08:03:58 +0000 UTC\n" +
			"state: ready\nstatus: Up 1 second\nlabels: a=2,z=1\n" +
			"ports: 7000/tcp, 127.0.0.1:9000-9001->9000-9001/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp\n\n" +
			"sandbox_id: 4f0a9b509585\nnames: idle\nnetworks: none\ncreated_at: 2026-12-07 08:03:59 +0000 UTC\n" +
			"state: creating\nstatus: creating\nlabels:\nports:\n\n"},
		{name: "raw quiet", args: []string{"ps", "--format", "raw", "-q"}, reply: sbs,
			wantOut: "sandbox_id: 36d16db3be01\nsandbox_id: 4f0a9b509585\n"},
		// docker ps checks the format before it asks the daemon, so these fail with nothing
		// to list; docker names *formatter.ContainerContext.
		{name: "unknown field", args: []string{"ps", "--format", "table {{.Nope}}"}, wantCode: 1,
			wantErr: `failed to execute template: template: :1:8: executing "" at <.Nope>: can't evaluate field Nope in type *main.sandboxContext` + "\n"},
		{name: "unclosed action", args: []string{"ps", "--format", "{{.Name"}, wantCode: 1,
			wantErr: "failed to parse template: template: :1: unclosed action\n"},
	})
}

// TestNetworkInspectFormat: inspect -f runs over the object's Go fields, then over its JSON
// names, as docker's inspect does; errors and exit codes are docker's.
func TestNetworkInspectFormat(t *testing.T) {
	app := oracleNetworks(t)[0]
	app.IPAM = api.IPAM{Driver: "default", Options: map[string]string{},
		Config: []api.IPAMConfig{{Subnet: "10.5.0.0/24", Gateway: "10.5.0.1", IPRange: "10.5.0.128/25"}}}
	app.Options = map[string]string{"com.docker.network.bridge.name": "brx"}
	app.Containers = map[string]api.NetworkContainer{"36d1": {Name: "web"}}
	in := func(args ...string) []string { return append([]string{"network", "inspect"}, args...) }
	appJSON, err := json.Marshal(app)
	if err != nil {
		t.Fatal(err)
	}
	runFormatCases(t, []formatCase{
		{name: "Id by JSON name", args: in("-f", "{{.Id}}", "app"), reply: app, wantOut: app.ID + "\n"},
		{name: "ID by Go name", args: in("-f", "{{.ID}}", "app"), reply: app, wantOut: app.ID + "\n"},
		{name: "range IPAM.Config", args: in("-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "app"), reply: app,
			wantOut: "10.5.0.0/24\n"},
		{name: "index Options", args: in("-f", `{{index .Options "com.docker.network.bridge.name"}}`, "app"), reply: app,
			wantOut: "brx\n"},
		{name: "IPAM.Config Go values", args: in("-f", "{{.IPAM.Config}}", "app"), reply: app,
			wantOut: "[{10.5.0.0/24 10.5.0.128/25 10.5.0.1 map[]}]\n"},
		{name: "json IPAM", args: in("-f", "{{json .IPAM}}", "app"), reply: app,
			wantOut: `{"Driver":"default","Options":{},"Config":[{"Subnet":"10.5.0.0/24","IPRange":"10.5.0.128/25","Gateway":"10.5.0.1"}]}` + "\n"},
		{name: "Go values", args: in("-f", "{{json .Labels}} {{.Labels}} {{.Created}} {{.EnableIPv6}} {{len .Containers}}", "app"),
			reply:   app,
			wantOut: `{"a":"1","b":"2"} map[a:1 b:2] 2026-12-07 08:03:25.767705094 +0000 UTC false 1` + "\n"},
		// The oracle's inspect has Ingress false (and Attachable) on every network.
		{name: "Ingress as docker", args: in("-f", "{{.Ingress}} {{.Attachable}}", "app"), reply: app, wantOut: "false false\n"},
		{name: "missing map key", args: in("-f", "{{.Labels.nope}}", "app"), reply: app, wantOut: "<no value>\n"},
		{name: "functions", reply: app,
			args:    in("-f", `{{join (split .Name "p") "-"}} {{upper .Name}} {{title .Name}} {{truncate .Name 2}} [{{pad .Name 1 2}}] [{{pad "" 1 2}}] {{lower "AB"}} {{.Id | printf "%.5s"}}`, "app"),
			wantOut: "a-- APP App ap [ app  ] [] ab 858ac\n"},
		{name: "println", args: in("-f", "{{println .Name}}x", "app"), reply: app, wantOut: "app\nx\n"},
		// One compact array on one line, as docker 28's -f json (20.10.24's CLI printed "json").
		{name: "json keyword", args: in("-f", "json", "app"), reply: app, wantOut: "[" + string(appJSON) + "]\n"},
		// Once the Go fields fail (.Id), the JSON maps answer with missingkey=error.
		{name: "unknown field", args: in("-f", "{{.Nope}}", "app"), reply: app, wantOut: "\n", wantCode: 1,
			wantErr: `template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"` + "\n"},
		{name: "fallback is strict", args: in("-f", "{{.Labels.nope}}|{{.Id}}", "app"), reply: app, wantOut: "\n", wantCode: 1,
			wantErr: `template parsing error: template: :1:9: executing "" at <.Labels.nope>: map has no entry for key "nope"` + "\n"},
		{name: "field of a list", args: in("-f", "{{.IPAM.Config.Subnet}}", "app"), reply: app, wantOut: "\n", wantCode: 1,
			wantErr: `template parsing error: template: :1:7: executing "" at <.IPAM.Config.Subnet>: can't evaluate field Subnet in type interface {}` + "\n"},
		{name: "arguments to a field", args: in("-f", "{{.IPAM.Config 0}}", "app"), reply: app, wantOut: "\n", wantCode: 1,
			wantErr: `template parsing error: template: :1:7: executing "" at <.IPAM.Config>: Config is not a method but has arguments` + "\n"},
		{name: "unclosed action", args: in("-f", "{{.Name", "app"), wantCode: 64,
			wantErr: "template parsing error: template: :1: unclosed action\n"},
	})
}

// TestInspectFormatNotFound: a missing ref gets berth's error line, the template's output
// is still printed (docker prints an empty line when there is none), exit 1.
func TestInspectFormatNotFound(t *testing.T) {
	f := newFakeDaemon(t)
	f.status, f.reply = http.StatusNotFound, api.Error{Message: `network "nosuch" not found`}
	for _, tc := range []struct{ format, want string }{
		{"{{.Name}}", "\n"},
		{"json", "[]\n"},
	} {
		out, errOut, code := runCLI(t, f.host, "network", "inspect", "-f", tc.format, "nosuch")
		if out != tc.want || errOut != "network \"nosuch\" not found\n" || code != 1 {
			t.Errorf("-f %s: got %q, %q, exit %d; want %q, the error, 1", tc.format, out, errOut, code, tc.want)
		}
	}
}

// TestSandboxInspectFormat: Go names (.NetNSPath) and JSON names (.SandboxKey) both work.
func TestSandboxInspectFormat(t *testing.T) {
	web := oracleSandbox()
	web.NetNSPath = "/run/netns/web"
	runFormatCases(t, []formatCase{
		{name: "Go and JSON names", args: []string{"sandbox", "inspect", "-f", "{{.NetNSPath}} {{.ID}}", "web"}, reply: web,
			wantOut: "/run/netns/web " + web.ID + "\n"},
		{name: "JSON names", args: []string{"sandbox", "inspect", "-f", "{{.SandboxKey}} {{.Id}}", "web"}, reply: web,
			wantOut: "/run/netns/web " + web.ID + "\n"},
		{name: "range over map", reply: web,
			args:    []string{"sandbox", "inspect", "-f", `{{range $k, $v := .Networks}}{{$k}}={{$v.IPAddress}} {{end}}`, "web"},
			wantOut: "app=10.5.0.128 back=172.18.0.2 \n"},
		{name: "index ports", reply: web,
			args:    []string{"sandbox", "inspect", "-f", `{{(index (index .Ports "80/tcp") 0).HostPort}}`, "web"},
			wantOut: "8080\n"},
	})
}

// TestDisplayPorts: docker ps's PORTS column, from docker/cli's DisplayablePorts cases
// and the oracle's web container.
func TestDisplayPorts(t *testing.T) {
	b := func(ip, port string) api.PortBinding { return api.PortBinding{HostIP: ip, HostPort: port} }
	for _, tc := range []struct {
		ports map[string][]api.PortBinding
		want  string
	}{
		{nil, ""},
		{map[string][]api.PortBinding{"9988/tcp": {}}, "9988/tcp"},
		{map[string][]api.PortBinding{"9988/udp": {}, "9989/udp": {}, "9990/udp": {}}, "9988-9990/udp"},
		{map[string][]api.PortBinding{"9988/tcp": {b("0.0.0.0", "8899")}}, "0.0.0.0:8899->9988/tcp"},
		{map[string][]api.PortBinding{"80/tcp": {b("0.0.0.0", "80")}, "81/tcp": {b("0.0.0.0", "81")}, "83/tcp": {b("0.0.0.0", "83")}},
			"0.0.0.0:80-81->80-81/tcp, 0.0.0.0:83->83/tcp"},
		{map[string][]api.PortBinding{"53/udp": {b("4.3.2.1", "53")}, "53/tcp": {b("4.3.2.1", "53")}},
			"4.3.2.1:53->53/tcp, 4.3.2.1:53->53/udp"},
		{map[string][]api.PortBinding{"80/tcp": {b("::", "8080")}}, "[::]:8080->80/tcp"},
		{oracleSandbox().Ports, "7000/tcp, 127.0.0.1:9000-9001->9000-9001/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"},
	} {
		if got := displayPorts(tc.ports); got != tc.want {
			t.Errorf("%v: got %q; want %q", tc.ports, got, tc.want)
		}
	}
}

// TestHumanDuration: go-units' HumanDuration, which docker ps's CREATED column uses.
func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "Less than a second"},
		{time.Second, "1 second"},
		{59 * time.Second, "59 seconds"},
		{90 * time.Second, "About a minute"},
		{45 * time.Minute, "45 minutes"},
		{89 * time.Minute, "About an hour"},
		{47 * time.Hour, "47 hours"},
		{13 * 24 * time.Hour, "13 days"},
		{59 * 24 * time.Hour, "8 weeks"},
		{700 * 24 * time.Hour, "23 months"},
		{3 * 365 * 24 * time.Hour, "3 years"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("%v: got %q; want %q", tc.d, got, tc.want)
		}
	}
}

// TestEventFormat: berth's and docker's event fields in one template.
func TestEventFormat(t *testing.T) {
	ev := api.Event{Time: time.Date(2026, 12, 7, 8, 3, 25, 835897545, time.UTC), Type: "sandbox", Action: "rename",
		ID: "36d1", Name: "www", OldName: "web"}
	for _, tc := range []struct{ format, want string }{
		{"{{.Type}} {{.Action}} {{.Name}} {{.OldName}}", "sandbox rename www web"},
		{"{{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.oldName}} {{.Scope}} {{.TimeNano}}",
			"36d1 www web local 1796630605835897545"},
		{"json", `{"time":"2026-12-07T08:03:25.835897545Z","Type":"sandbox","Action":"rename","ID":"36d1","Name":"www",` +
			`"OldName":"web","Actor":{"ID":"36d1","Attributes":{"name":"www","oldName":"web"}},"scope":"local","timeNano":1796630605835897545}`},
	} {
		text, _ := expandFormat(tc.format)
		tmpl, err := parseTemplate(text)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, newEventContext(ev)); err != nil || b.String() != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.format, b.String(), err, tc.want)
		}
	}
}

// TestEventFormatErrors: docker events' words for a bad format, before any request.
func TestEventFormatErrors(t *testing.T) {
	f := newFakeDaemon(t)
	_, errOut, code := runCLI(t, f.host, "events", "--format", "{{.Nope")
	if want := "Error parsing format: template: :1: unclosed action\n"; errOut != want || code != 1 || len(f.calls) != 0 {
		t.Errorf("got %q, exit %d, %d requests; want %q, 1, 0", errOut, code, len(f.calls), want)
	}
}

// TestDNSQueryFormat: dns query -f works as inspect -f on the answer.
func TestDNSQueryFormat(t *testing.T) {
	res := api.DNSQuery{Sandbox: "web", Name: "db", Type: "A", Rcode: "NOERROR", Flags: []string{"qr", "aa"},
		Answer: []string{"db.\t600\tIN\tA\t10.5.0.3", "db.\t600\tIN\tA\t10.6.0.3"}, How: "network app"}
	q := func(format string) []string { return []string{"dns", "query", "-f", format, "web", "db"} }
	runFormatCases(t, []formatCase{
		{name: "Go fields", args: q(`{{.Rcode}} {{join .Answer "\n"}}`), reply: res,
			wantOut: "NOERROR db.\t600\tIN\tA\t10.5.0.3\ndb.\t600\tIN\tA\t10.6.0.3\n"},
		{name: "index", args: q(`{{index .Flags 1}} {{len .Answer}} {{.How}}`), reply: res, wantOut: "aa 2 network app\n"},
		{name: "json", args: q("json"), reply: api.DNSQuery{Name: "db"},
			wantOut: `{"Sandbox":"","Name":"db","Type":"","Rcode":"","Flags":null,"Answer":null,"Authority":null,"How":"","Cached":false,"CacheTTL":0}` + "\n"},
		{name: "unknown field", args: q("{{.Nope}}"), reply: res, wantOut: "\n", wantCode: 1,
			wantErr: `template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"` + "\n"},
		{name: "bad template", args: q("{{.Rcode"), wantCode: 64, wantErr: "template parsing error: template: :1: unclosed action\n"},
	})
}
