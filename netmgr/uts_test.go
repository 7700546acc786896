package netmgr

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"berth/api"
)

// TestSandboxUTS: bridge and none sandboxes get a UTS namespace of their own named by
// --hostname (default: the sandbox name) and --domainname, removed with the sandbox;
// container: shares the other's; host mode and adopted netns have none; names the kernel
// would refuse are one-line errors that change nothing.
func TestSandboxUTS(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.21.0.0/24"}})
	web, _ := mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}, Hostname: "www", Domainname: "corp.example"})
	plain, _ := mustSandbox(t, m, api.SandboxCreate{Name: "plain", Networks: []string{"none"}})
	side, _ := mustSandbox(t, m, api.SandboxCreate{Name: "side", Networks: []string{"container:web"}})
	host, _ := mustSandbox(t, m, api.SandboxCreate{Name: "h", Networks: []string{"host"}})

	if want := filepath.Join(m.cfg.RunDir, "uts", web.ID); web.UTSPath != want || k.uts[want] != "www.corp.example" {
		t.Errorf("web: UTS %q (%q), want %q with www.corp.example", web.UTSPath, k.uts[web.UTSPath], want)
	}
	if k.uts[plain.UTSPath] != "plain." {
		t.Errorf("plain: UTS %q named %q, want the sandbox name", plain.UTSPath, k.uts[plain.UTSPath])
	}
	if side.UTSPath != web.UTSPath || host.UTSPath != "" {
		t.Errorf("container: UTS %q (want web's %q), host: %q (want none)", side.UTSPath, web.UTSPath, host.UTSPath)
	}
	if len(k.uts) != 2 {
		t.Errorf("%d UTS namespaces, want 2: %v", len(k.uts), k.uts)
	}
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "side", Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.uts[web.UTSPath]; !ok {
		t.Errorf("removing the container: sandbox removed web's UTS namespace")
	}
	for _, name := range []string{"web", "plain"} {
		if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: name, Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if len(k.uts) != 0 {
		t.Errorf("UTS namespaces left after rm: %v", k.uts)
	}

	before := len(m.cfg.Store.Snapshot().Sandboxes())
	for _, tc := range []struct {
		req  api.SandboxCreate
		want string
	}{
		{api.SandboxCreate{Name: "a", Hostname: strings.Repeat("h", 30) + "." + strings.Repeat("h", 40)}, "invalid hostname"},
		{api.SandboxCreate{Name: "a", Domainname: "bad_dom!"}, `invalid domainname "bad_dom!"`},
		{api.SandboxCreate{Name: "a", Domainname: strings.Repeat("d", 40) + "." + strings.Repeat("d", 40)}, "longer than 64 characters"},
		{api.SandboxCreate{Name: "a", Networks: []string{"container:h"}, Hostname: "x"}, "conflicting options"},
	} {
		_, err := m.CreateSandbox(t.Context(), tc.req)
		var ie *InvalidError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want an InvalidError containing %q", tc.req, err, tc.want)
		}
	}
	if got := len(m.cfg.Store.Snapshot().Sandboxes()); got != before || len(k.uts) != 0 {
		t.Errorf("bad input changed something: sandboxes %d -> %d, UTS %v", before, got, k.uts)
	}
}
