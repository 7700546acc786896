package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"berth/api"
)

// newRoutedDaemon is a fake daemon that answers GET PATH with routes[PATH] (JSON) and
// 404 otherwise: completion asks for lists and one network, by path.
func newRoutedDaemon(t *testing.T, routes map[string]any) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "b.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := routes[strings.TrimPrefix(r.URL.Path, "/v1")]
		if !ok || r.Method != http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"message": "no such thing"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

// directive lines of `berth __complete`: the completions come before them.
const (
	noFileComp = ":4"
	shellComp  = ":0"
	compError  = ":1" // the daemon could not be asked
)

// TestCompletion: each operand and --network completes the daemon's names, with
// ShellCompDirectiveNoFileComp (":4") as docker 28 answers against dockerd 20.10 (checked:
// `docker __complete network rm ”` printed "none host bridge app back" and ":4"; docker
// repeats names already given and leaves the prefix to the shell, berth does neither).
func TestCompletion(t *testing.T) {
	host := newRoutedDaemon(t, map[string]any{
		"/networks":  []api.Network{{Name: "bridge"}, {Name: "host"}, {Name: "none"}, {Name: "app"}, {Name: "back"}},
		"/sandboxes": []api.Sandbox{{Name: "web"}, {Name: "db"}, {Name: "worker"}},
		"/networks/app": api.Network{Name: "app", Containers: map[string]api.NetworkContainer{
			"1111": {Name: "web"}, "2222": {Name: "worker"}}},
	})
	for _, tc := range []struct {
		args []string
		want string // stdout lines, the directive last
	}{
		{[]string{"network", "rm", ""}, "app back bridge host none " + noFileComp},
		{[]string{"network", "rm", "b"}, "back bridge " + noFileComp},
		{[]string{"network", "rm", "app", ""}, "back bridge host none " + noFileComp}, // given once is enough
		{[]string{"network", "remove", "a"}, "app " + noFileComp},
		{[]string{"network", "inspect", "h"}, "host " + noFileComp},
		{[]string{"network", "inspect", "-f", "{{.Name}}", "ap"}, "app " + noFileComp},
		{[]string{"network", "connect", ""}, "app back bridge host none " + noFileComp},
		{[]string{"network", "connect", "app", ""}, "db web worker " + noFileComp},
		{[]string{"network", "connect", "--alias", "x", "app", "w"}, "web worker " + noFileComp},
		{[]string{"network", "connect", "app", "web", ""}, noFileComp},
		{[]string{"network", "disconnect", "app", ""}, "web worker " + noFileComp}, // only those on app
		{[]string{"network", "disconnect", "nosuch", ""}, compError},
		{[]string{"sandbox", "rm", ""}, "db web worker " + noFileComp},
		{[]string{"sandbox", "rm", "-f", "web", "w"}, "worker " + noFileComp},
		{[]string{"sandbox", "inspect", "d"}, "db " + noFileComp},
		{[]string{"sandbox", "port", ""}, "db web worker " + noFileComp},
		{[]string{"sandbox", "port", "web", ""}, noFileComp},
		{[]string{"sandbox", "rename", "wo"}, "worker " + noFileComp},
		{[]string{"sandbox", "rename", "worker", ""}, noFileComp},
		{[]string{"exec", ""}, "db web worker " + noFileComp},
		{[]string{"exec", "web", ""}, shellComp}, // the command: the shell's own completion
		{[]string{"sandbox", "create", "--network", ""}, "app back bridge host none " + noFileComp},
		{[]string{"sandbox", "create", "--name", "x", "--network", "b"}, "back bridge " + noFileComp},
		{[]string{"sandbox", "create", "--network=a"}, "app " + noFileComp},
		{[]string{"sandbox", "create", "--network", "container:w"}, "container:web container:worker " + noFileComp},
		{[]string{"run", "--network", "n"}, "none " + noFileComp},
		{[]string{"run", "--rm", "--network", ""}, "app back bridge host none " + noFileComp},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, host, append([]string{"__complete"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if got := strings.Join(strings.Fields(out), " "); got != tc.want {
				t.Errorf("got %q; want %q", got, tc.want)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "Completion ended with directive: ") {
				t.Errorf("stderr %q; want only cobra's directive line (which the shell scripts discard)", errOut)
			}
		})
	}
}

// TestCompletionHostInLine: the scripts pass the command line as typed, so a --host on it
// (after __complete) names the daemon to ask.
func TestCompletionHostInLine(t *testing.T) {
	host := newRoutedDaemon(t, map[string]any{"/networks": []api.Network{{Name: "app"}}})
	out, errOut, code := runCLI(t, "unix:///nonexistent.sock", "__complete", "--host", host, "network", "rm", "")
	if got := strings.Join(strings.Fields(out), " "); code != 0 || got != "app "+noFileComp {
		t.Errorf("got %q, exit %d, stderr %q; want %q", got, code, errOut, "app "+noFileComp)
	}
}

// TestCompletionNoDaemon: with no daemon, or one that never answers, a TAB offers
// nothing and says nothing: ShellCompDirectiveError, as docker 28 answers (checked:
// DOCKER_HOST=unix:///tmp/nonexist.sock docker __complete network rm ” and
// docker __complete run --network ” print ":1" and, on stderr, "Completion ended with
// directive: ShellCompDirectiveError").
func TestCompletionNoDaemon(t *testing.T) {
	dir := t.TempDir()
	hung := filepath.Join(dir, "hung.sock")
	ln, err := net.Listen("unix", hung) // accepts (the kernel's backlog) and never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// Every operand kind without a socket; one with a hung daemon (each waits out
	// completionTimeout).
	all := [][]string{
		{"network", "rm", ""},
		{"network", "connect", "app", ""},
		{"network", "disconnect", "app", ""},
		{"sandbox", "inspect", ""},
		{"exec", ""},
		{"sandbox", "create", "--network", ""},
	}
	for _, hc := range []struct {
		name, host string
		cases      [][]string
	}{
		{"no socket", "unix://" + filepath.Join(dir, "none.sock"), all},
		{"hung", "unix://" + hung, all[:1]},
	} {
		name, host := hc.name, hc.host
		for _, args := range hc.cases {
			t.Run(name+"/"+strings.Join(args, " "), func(t *testing.T) {
				out, errOut, code := runCLI(t, host, append([]string{"__complete"}, args...)...)
				want := compError
				if got := strings.Join(strings.Fields(out), " "); code != 0 || got != want {
					t.Errorf("got %q, exit %d; want %q, exit 0", got, code, want)
				}
				if errOut != "Completion ended with directive: ShellCompDirectiveError\n" {
					t.Errorf("stderr %q; want only cobra's directive line", errOut)
				}
			})
		}
	}
}

// TestCompletionScripts: cobra's `completion` command prints each shell's script.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_berth",
		"zsh":  "#compdef berth",
		"fish": "complete -c berth ",
	} {
		t.Run(shell, func(t *testing.T) {
			out, errOut, code := runCLI(t, "unix:///nonexistent.sock", "completion", shell)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if !strings.Contains(out, want) {
				t.Errorf("berth completion %s: no %q in\n%.300s", shell, want, out)
			}
		})
	}
}
