package netmgr

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/api"
	"berth/resolver"
	"berth/store"
)

func TestSandboxCreateUndoOnKernelFailure(t *testing.T) {
	for _, op := range []string{"CreateNetNS", "AddVeth"} {
		t.Run(op, func(t *testing.T) {
			m, k := newTestManager(t)
			mustNetwork(t, m, api.NetworkCreate{Name: "app"})
			k.failOn = op
			_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "web", Networks: []string{"app"}})
			if err == nil {
				t.Fatal("create succeeded despite a kernel failure")
			}
			snap := m.cfg.Store.Snapshot()
			if len(snap.Sandboxes()) != 0 {
				t.Errorf("sandbox record left behind")
			}
			n, _ := snap.NetworkByName("app")
			if a := snap.NetworkAddresses(n.ID); len(a) != 0 {
				t.Errorf("addresses left allocated: %v", a)
			}
			for l, kind := range k.links {
				if kind == "veth" {
					t.Errorf("veth %s left behind", l)
				}
			}
			if len(k.netns) != 0 {
				t.Errorf("netns left behind: %v", k.netns)
			}
		})
	}
}

func TestSandboxDefaultsAndNames(t *testing.T) {
	m, k := newTestManager(t)
	sb, ep := mustSandbox(t, m, api.SandboxCreate{})
	if sb.Name == "" || checkName("name", sb.Name) != nil {
		t.Errorf("generated name %q is not a valid name", sb.Name)
	}
	snap := m.cfg.Store.Snapshot()
	n, _ := snap.Network(ep.NetworkID)
	if n.Name != "bridge" || ep.IfName != "eth0" {
		t.Errorf("default attachment = %s/%s, want bridge/eth0", n.Name, ep.IfName)
	}
	if gw := k.gw[sb.NetNSPath]; gw[0].String() != "172.17.0.1" {
		t.Errorf("default route via %v, want 172.17.0.1", gw[0])
	}
	if _, err := os.Stat(filepath.Join(m.cfg.FilesDir, sb.Name, "resolv.conf")); err != nil {
		t.Errorf("resolv.conf not written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.cfg.RunDir, "sandboxes", sb.ID, "hosts")); err != nil {
		t.Errorf("hosts copy under the state dir not written: %v", err)
	}
}

func TestSandboxCreateInvalid(t *testing.T) {
	m, _ := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app", Subnets: []string{"10.20.0.0/24"}})
	mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	mustSandbox(t, m, api.SandboxCreate{Name: "user", Networks: []string{"app"}})
	cases := []struct {
		name  string
		req   api.SandboxCreate
		field string
	}{
		{"slash", api.SandboxCreate{Name: "a/b"}, "name"},
		{"dotdot", api.SandboxCreate{Name: ".."}, "name"},
		{"space", api.SandboxCreate{Name: "a b"}, "name"},
		{"leading dash", api.SandboxCreate{Name: "-a"}, "name"},
		{"long", api.SandboxCreate{Name: strings.Repeat("x", 64)}, "name"},
		{"hostname", api.SandboxCreate{Name: "a", Hostname: "bad_host!"}, "hostname"},
		{"alias label", api.SandboxCreate{Name: "a", Networks: []string{"app"}, Aliases: []string{strings.Repeat("l", 64)}}, "alias"},
		{"alias on default bridge", api.SandboxCreate{Name: "a", Aliases: []string{"x"}}, "alias"},
		{"ip on default bridge", api.SandboxCreate{Name: "a", IPv4: "172.17.0.9"}, "ip"},
		{"ip6 on default bridge", api.SandboxCreate{Name: "a", IPv6: "fd00::9"}, "ip6"},
		{"ip not an address", api.SandboxCreate{Name: "a", Networks: []string{"app"}, IPv4: "10.20.0.50invalid"}, "ip"},
		{"ip taken", api.SandboxCreate{Name: "a", Networks: []string{"app"}, IPv4: "10.20.0.2"}, "ip"},
		{"mac", api.SandboxCreate{Name: "a", MAC: "zz"}, "mac-address"},
		{"dns", api.SandboxCreate{Name: "a", DNS: []string{"1.2.3"}}, "dns"},
		{"dns-search", api.SandboxCreate{Name: "a", DNSSearch: []string{"a..b"}}, "dns-search"},
		{"dns-option", api.SandboxCreate{Name: "a", DNSOptions: []string{"a b"}}, "dns-option"},
		{"add-host", api.SandboxCreate{Name: "a", ExtraHosts: []string{"nohostip"}}, "add-host"},
		{"add-host ip", api.SandboxCreate{Name: "a", ExtraHosts: []string{"h:1.2.3.999"}}, "add-host"},
		{"link self", api.SandboxCreate{Name: "a", Networks: []string{"app"}, Links: []string{"a:x"}}, "link"},
		{"link not on bridge", api.SandboxCreate{Name: "a", Links: []string{"web:w"}}, "link"},
		{"none with ip", api.SandboxCreate{Name: "a", Networks: []string{"none"}, IPv4: "10.0.0.1"}, "network"},
		{"container missing", api.SandboxCreate{Name: "a", Networks: []string{"container:nope"}}, "network"},
		{"host plus net", api.SandboxCreate{Name: "a", Networks: []string{"host", "app"}}, "network"},
	}
	// The whole one-line error, where it is checked (an unset address once printed as
	// "invalid IP" after the one given).
	msgs := map[string]string{
		"ip on default bridge":  `invalid ip "172.17.0.9": user specified IP address is supported on user defined networks only`,
		"ip6 on default bridge": `invalid ip6 "fd00::9": user specified IP address is supported on user defined networks only`,
		"ip not an address":     `invalid ip "10.20.0.50invalid": not an IP address`,
	}
	before := len(m.cfg.Store.Snapshot().Sandboxes())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.CreateSandbox(t.Context(), tc.req)
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("err = %v, want InvalidError on field %q", err, tc.field)
			}
			if msg := msgs[tc.name]; msg != "" && err.Error() != msg {
				t.Errorf("err = %q, want %q", err, msg)
			}
		})
	}
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "WEB"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate name: err = %v, want ErrConflict", err)
	}
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Networks: []string{"nonet"}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown network: err = %v, want ErrNotFound", err)
	}
	if got := len(m.cfg.Store.Snapshot().Sandboxes()); got != before {
		t.Errorf("bad input changed the sandboxes: %d -> %d", before, got)
	}
}

func TestSandboxModes(t *testing.T) {
	m, k := newTestManager(t)
	none, _ := mustSandbox(t, m, api.SandboxCreate{Name: "n", Networks: []string{"none"}})
	host, _ := mustSandbox(t, m, api.SandboxCreate{Name: "h", Networks: []string{"host"}})
	base, _ := mustSandbox(t, m, api.SandboxCreate{Name: "base"})
	joined, _ := mustSandbox(t, m, api.SandboxCreate{Name: "j", Networks: []string{"container:base"}})
	snap := m.cfg.Store.Snapshot()
	for _, sb := range []*store.Sandbox{none, host, joined} {
		if eps := snap.SandboxEndpoints(sb.ID); len(eps) != 0 {
			t.Errorf("%s (%s) has endpoints %v", sb.Name, sb.Mode, eps)
		}
		if !k.netns[sb.NetNSPath] {
			t.Errorf("%s: netns not pinned", sb.Name)
		}
	}
	if joined.Container != base.ID {
		t.Errorf("container mode: Container = %s, want %s", joined.Container, base.ID)
	}
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "base", Force: true}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("removing a sandbox others share: err = %v, want ErrConflict", err)
	}
	if err := m.Connect(t.Context(), api.NetworkConnect{Network: "bridge", Sandbox: "h"}); err == nil {
		t.Errorf("connect of a host-mode sandbox succeeded")
	}
}

func TestConnectDisconnectRoutes(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "int", Internal: true, Subnets: []string{"10.40.0.0/24"}})
	mustNetwork(t, m, api.NetworkCreate{Name: "ext", Subnets: []string{"10.41.0.0/24"}})
	sb, _ := mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"int"}})
	if gw := k.gw[sb.NetNSPath]; gw[0].IsValid() {
		t.Errorf("internal-only sandbox got a default route via %v", gw[0])
	}
	if err := m.Connect(t.Context(), api.NetworkConnect{Network: "ext", Sandbox: "web", Aliases: []string{"api"}}); err != nil {
		t.Fatal(err)
	}
	snap := m.cfg.Store.Snapshot()
	n, _ := snap.NetworkByName("ext")
	ep, err := snap.EndpointOf(n.ID, sb.ID)
	if err != nil || ep.IfName != "eth1" {
		t.Fatalf("second endpoint = %+v, %v; want eth1", ep, err)
	}
	if got := strings.Join(ep.DNSNames, ","); got != "web,api,"+sb.ID[:12] {
		t.Errorf("DNSNames = %s", got)
	}
	if gw := k.gw[sb.NetNSPath]; gw[0].String() != "10.41.0.1" {
		t.Errorf("default route via %v, want 10.41.0.1", gw[0])
	}
	if err := m.Connect(t.Context(), api.NetworkConnect{Network: "ext", Sandbox: "web"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("double connect: err = %v, want ErrConflict", err)
	}
	if err := m.Disconnect(t.Context(), api.NetworkDisconnect{Network: "ext", Sandbox: "web"}); err != nil {
		t.Fatal(err)
	}
	if gw := k.gw[sb.NetNSPath]; gw[0].IsValid() {
		t.Errorf("after disconnect: default route via %v, want none", gw[0])
	}
	if a := m.cfg.Store.Snapshot().NetworkAddresses(n.ID); len(a) != 0 {
		t.Errorf("disconnect left addresses %v", a)
	}
	if _, ok := k.links[ep.HostVeth]; ok {
		t.Errorf("disconnect left veth %s", ep.HostVeth)
	}
	if err := m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "int"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("removing a network in use: err = %v, want ErrConflict", err)
	}
	if err := m.RemoveNetwork(t.Context(), api.NetworkRemove{Network: "bridge"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("removing the default bridge: err = %v, want ErrConflict", err)
	}
}

func TestRename(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	old, _ := mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	if err := m.RenameSandbox(t.Context(), api.SandboxRename{Sandbox: "web", Name: "www"}); err != nil {
		t.Fatal(err)
	}
	snap := m.cfg.Store.Snapshot()
	sb, err := snap.SandboxByName("www")
	if err != nil {
		t.Fatal(err)
	}
	if k.netns[old.NetNSPath] || !k.netns[sb.NetNSPath] {
		t.Errorf("netns pins after rename: %v", k.netns)
	}
	n, _ := snap.NetworkByName("app")
	if eps := snap.EndpointsByName(n.ID, "web"); len(eps) != 0 {
		t.Errorf("old name still resolves")
	}
	if eps := snap.EndpointsByName(n.ID, "WWW"); len(eps) != 1 {
		t.Errorf("new name does not resolve")
	}
	if _, err := os.Stat(filepath.Join(m.cfg.FilesDir, "web")); !os.IsNotExist(err) {
		t.Errorf("old files dir still there: %v", err)
	}
}

func TestRestoreSweepsAndDrops(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	mustSandbox(t, m, api.SandboxCreate{Name: "gone", Networks: []string{"app"}})
	keep, kept := mustSandbox(t, m, api.SandboxCreate{Name: "keep", Networks: []string{"app"}})
	gone, _ := m.cfg.Store.Snapshot().SandboxByName("gone")
	delete(k.netns, gone.NetNSPath)       // someone ran `ip netns del gone`
	delete(k.links, kept.HostVeth)        // someone deleted a veth
	k.links["bth0123abcd"] = "veth"       // a veth berth made but has no record of
	k.links["br-0123456789ab"] = "bridge" // same for a bridge
	k.links["br-mine"] = "bridge"         // not berth's naming: left alone
	if err := m.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap := m.cfg.Store.Snapshot()
	if _, err := snap.SandboxByName("gone"); err == nil {
		t.Errorf("sandbox whose netns is gone was kept")
	}
	if _, ok := k.links[kept.HostVeth]; !ok {
		t.Errorf("missing veth of %s not recreated", keep.Name)
	}
	for _, l := range []string{"bth0123abcd", "br-0123456789ab"} {
		if _, ok := k.links[l]; ok {
			t.Errorf("orphan %s not swept", l)
		}
	}
	if _, ok := k.links["br-mine"]; !ok {
		t.Errorf("foreign bridge br-mine was removed")
	}
}

// cutShortCreate does what CreateSandbox does up to its commit, then stops as a crash
// would: the intent file and the kernel objects stay, no records.
func cutShortCreate(t *testing.T, m *Manager, name string) (*store.Sandbox, *store.Endpoint) {
	t.Helper()
	snap := m.cfg.Store.Snapshot()
	p, err := m.planSandbox(snap, api.SandboxCreate{Name: name, Networks: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	eps, err := m.planEndpoints(snap, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.writeIntent(p.sb, eps); err != nil {
		t.Fatal(err)
	}
	if err := m.buildSandbox(t.Context(), p, eps); err != nil {
		t.Fatal(err)
	}
	ep := eps[0]
	// The files as a create's would be (a real one writes them after its commit).
	dir := filepath.Join(m.cfg.FilesDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(resolver.Header), 0o644); err != nil {
		t.Fatal(err)
	}
	return p.sb, ep
}

// TestRestoreUndoesIntent: a create cut short after its kernel work but before its one
// commit leaves no records, only its intent file; the restore pass undoes the netns, veth
// and files it names and frees nothing twice. An intent of another boot is dropped unread:
// the netns pin it names may be someone else's by now.
func TestRestoreUndoesIntent(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	sb, ep := cutShortCreate(t, m, "web")
	if got := m.cfg.Store.Snapshot().Sandboxes(); len(got) != 0 {
		t.Fatalf("records visible before the commit: %v", got)
	}
	if !k.netns[sb.NetNSPath] || k.links[ep.HostVeth] != "veth" {
		t.Fatalf("kernel objects not made: netns %v, links %v", k.netns, k.links)
	}
	// An intent of an earlier boot naming a netns that exists now (someone else's).
	k.netns[filepath.Join(m.cfg.NetNSDir, "theirs")] = true
	old := `{"boot":"00000000-0000-0000-0000-000000000000","records":{"sandboxes":[{"ID":"` +
		strings.Repeat("f", 64) + `","Name":"theirs","NetNSPath":"` + filepath.Join(m.cfg.NetNSDir, "theirs") + `","State":"creating"}]}}`
	if err := os.WriteFile(filepath.Join(m.intentDir(), strings.Repeat("f", 64)), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := m.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap := m.cfg.Store.Snapshot()
	if got := snap.Sandboxes(); len(got) != 0 {
		t.Errorf("sandboxes after restore: %v; want none", got)
	}
	n, _ := snap.NetworkByName("app")
	if a := snap.NetworkAddresses(n.ID); len(a) != 0 {
		t.Errorf("addresses left allocated: %v", a)
	}
	if k.netns[sb.NetNSPath] {
		t.Errorf("netns %s of the cut-short create left behind", sb.NetNSPath)
	}
	if _, ok := k.links[ep.HostVeth]; ok {
		t.Errorf("veth %s of the cut-short create left behind", ep.HostVeth)
	}
	if _, err := os.Stat(filepath.Join(m.cfg.FilesDir, "web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("files of the cut-short create left behind: %v", err)
	}
	if !k.netns[filepath.Join(m.cfg.NetNSDir, "theirs")] {
		t.Errorf("an intent of another boot removed a netns")
	}
	if left, _ := os.ReadDir(m.intentDir()); len(left) != 0 {
		t.Errorf("intent files left: %v", left)
	}
	// The name and the address are free again.
	if _, again := mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}}); again.IPv4 != ep.IPv4 {
		t.Errorf("address of web created again: %v; want the freed %v", again.IPv4, ep.IPv4)
	}
}

// TestCreateLeavesNoIntent: a create removes its intent file once committed, and a failed
// create once undone.
func TestCreateLeavesNoIntent(t *testing.T) {
	m, k := newTestManager(t)
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	k.failOn = "AddVeth"
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "db", Networks: []string{"app"}}); err == nil {
		t.Fatal("create succeeded despite a kernel failure")
	}
	if left, _ := os.ReadDir(m.intentDir()); len(left) != 0 {
		t.Errorf("intent files left: %v", left)
	}
}

// TestCreateDurable: a create is acknowledged only once its records are on disk (they are
// written while the files and the firewall are done).
func TestCreateDurable(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := New(Config{Store: st, Kernel: newFakeKernel(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NetNSDir: dir + "/netns", FilesDir: dir + "/etc", RunDir: dir + "/run"})
	if err := m.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustNetwork(t, m, api.NetworkCreate{Name: "app"})
	sb, _ := mustSandbox(t, m, api.SandboxCreate{Name: "web", Networks: []string{"app"}})
	// A copy of the state file as a crash now would leave it (the store stays open).
	b, err := os.ReadFile(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "copy.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	got, err := cp.Snapshot().Sandbox(sb.ID)
	if err != nil || got.State != store.StateReady || len(cp.Snapshot().SandboxEndpoints(sb.ID)) != 1 {
		t.Errorf("on disk after the create: %+v, %v; want web, ready, with its endpoint", got, err)
	}
}
