package netmgr

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"berth/api"
	"berth/netmgr/firewall"
	"berth/netmgr/portmap"
	"berth/store"
)

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
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "a", Force: true}); err != nil {
		t.Fatal(err)
	}
	c, _ := mustSandbox(t, m, api.SandboxCreate{Name: "c", Publish: []string{"8080:81"}})
	if c.Ports[0] != (store.Port{Proto: "tcp", HostPort: 8080, Port: 81}) {
		t.Errorf("after rm: %+v", c.Ports)
	}
}

// fakePorts is a PortHolder whose taken addresses ("tcp 0.0.0.0:8080") fail as another
// process's would.
type fakePorts struct {
	taken map[string]bool
	held  map[string][]portmap.Binding
}

func newFakePorts(taken ...string) *fakePorts {
	f := &fakePorts{taken: map[string]bool{}, held: map[string][]portmap.Binding{}}
	for _, s := range taken {
		f.taken[s] = true
	}
	return f
}

func (f *fakePorts) Hold(owner string, bs []portmap.Binding) error {
	for _, b := range bs {
		if f.taken[b.Proto+" "+b.Host.String()] {
			return &portmap.BindError{Binding: b, Err: syscall.EADDRINUSE}
		}
		for _, hs := range f.held {
			for _, h := range hs {
				if h.Proto == b.Proto && h.Host == b.Host {
					return &portmap.BindError{Binding: b, Err: syscall.EADDRINUSE}
				}
			}
		}
	}
	f.held[owner] = append(f.held[owner], bs...)
	return nil
}

func (f *fakePorts) Release(owner string) { delete(f.held, owner) }

// describe lists owner's bindings as "tcp 0.0.0.0:8080 nat" or "... proxy".
func (f *fakePorts) describe(owner string) []string {
	var out []string
	for _, b := range f.held[owner] {
		kind := "nat"
		if b.Target != nil {
			kind = "proxy"
		}
		out = append(out, b.Proto+" "+b.Host.String()+" "+kind)
	}
	return out
}

func TestHoldPortsRefusesTaken(t *testing.T) {
	m, _ := newTestManager(t)
	ports := newFakePorts("tcp [::]:8080")
	m.cfg.Ports = ports
	_, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Publish: []string{"9000:90", "8080:80"}})
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Field != "publish" || ie.Value != "8080:80" {
		t.Fatalf("taken port: err = %v, want invalid publish \"8080:80\"", err)
	}
	if want := `invalid publish "8080:80": bind [::]:8080/tcp: address already in use (taken by another process)`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	snap := m.cfg.Store.Snapshot()
	if n := len(snap.Sandboxes()); n != 0 {
		t.Errorf("%d sandboxes after a refused create, want 0", n)
	}
	if len(ports.held) != 0 {
		t.Errorf("held after a refused create: %v", ports.held)
	}
}

func TestHoldPortsBindings(t *testing.T) {
	m, _ := newTestManager(t)
	lo, _ := ephemeralRange()
	ports := newFakePorts(fmt.Sprintf("tcp 0.0.0.0:%d", lo))
	m.cfg.Ports = ports
	sb, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Publish: []string{
		"80", "127.0.0.1:8080:80", "[::1]:8081:80", "[::]:8082:80", "0.0.0.0:8083:80/udp"}})
	if err != nil {
		t.Fatal(err)
	}
	// The first ephemeral port is taken on 0.0.0.0: the next one is picked.
	if sb.Ports[0].HostPort != lo+1 {
		t.Errorf("ephemeral host port = %d, want %d (skipping the taken %d)", sb.Ports[0].HostPort, lo+1, lo)
	}
	want := []string{
		fmt.Sprintf("tcp 0.0.0.0:%d nat", lo+1), fmt.Sprintf("tcp [::]:%d proxy", lo+1),
		"tcp 127.0.0.1:8080 nat", "tcp [::1]:8081 proxy", "tcp [::]:8082 proxy", "udp 0.0.0.0:8083 nat",
	}
	if got := ports.describe(sb.ID); !slices.Equal(got, want) {
		t.Errorf("held:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// PortBindings (what `sandbox port` shows) lists the same addresses.
	var shown []string
	for _, p := range PortBindings(m.cfg.Store.Snapshot(), sb) {
		shown = append(shown, fmt.Sprintf("%s %s", p.Proto, netip.AddrPortFrom(p.HostIP, p.HostPort)))
	}
	for i := range want {
		want[i] = want[i][:strings.LastIndex(want[i], " ")]
	}
	if !slices.Equal(shown, want) {
		t.Errorf("PortBindings:\n%s\nwant:\n%s", strings.Join(shown, "\n"), strings.Join(want, "\n"))
	}
	// The proxy of an IPv4-only sandbox dials its IPv4 address.
	for _, b := range ports.held[sb.ID] {
		if b.Target != nil {
			to, err := b.Target()
			ep := m.cfg.Store.Snapshot().SandboxEndpoints(sb.ID)[0]
			if err != nil || to != netip.AddrPortFrom(ep.IPv4, 80) {
				t.Errorf("proxy target of %s = %v, %v; want %s:80", b, to, err, ep.IPv4)
			}
		}
	}
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "a", Force: true}); err != nil {
		t.Fatal(err)
	}
	if len(ports.held) != 0 {
		t.Errorf("held after rm: %v", ports.held)
	}
}

// TestRestorePortTaken: after a restart, a port taken meanwhile is logged and left out;
// the sandbox and its other ports stay.
func TestRestorePortTaken(t *testing.T) {
	m, _ := newTestManager(t)
	m.cfg.Ports = newFakePorts()
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Publish: []string{"8080:80", "8081:81"}}); err != nil {
		t.Fatal(err)
	}
	cfg := m.cfg
	ports := newFakePorts("tcp 0.0.0.0:8080")
	cfg.Ports = ports
	m2 := New(cfg)
	if err := m2.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb, err := m2.cfg.Store.Snapshot().SandboxByName("a")
	if err != nil {
		t.Fatalf("sandbox gone after restore: %v", err)
	}
	want := []string{"tcp [::]:8080 proxy", "tcp 0.0.0.0:8081 nat", "tcp [::]:8081 proxy"}
	if got := ports.describe(sb.ID); !slices.Equal(got, want) {
		t.Errorf("held after restore: %v, want %v", got, want)
	}
}

func TestAssignHostPortsNoneFree(t *testing.T) {
	m, _ := newTestManager(t)
	inUse := &portmap.BindError{Err: syscall.EADDRINUSE}
	_, err := assignHostPorts(m.cfg.Store.Snapshot(), []PublishSpec{{Port: store.Port{Proto: "tcp", Port: 80}}},
		func(int, store.Port) error { return inUse })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("every port taken: err = %v, want a conflict", err)
	}
	boom := errors.New("boom")
	_, err = assignHostPorts(m.cfg.Store.Snapshot(), []PublishSpec{{Port: store.Port{Proto: "tcp", Port: 80}}},
		func(int, store.Port) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("other bind error: err = %v, want it returned", err)
	}
}

// TestHoldPortsFailedCreate: a create that fails after its ports were held lets them go.
func TestHoldPortsFailedCreate(t *testing.T) {
	for _, op := range []string{"CreateNetNS", "AddVeth", "firewall"} {
		t.Run(op, func(t *testing.T) {
			m, k := newTestManager(t)
			ports := newFakePorts()
			m.cfg.Ports = ports
			k.failOn = op
			if op == "firewall" { // after the commit: the sandbox is torn down
				m.cfg.Firewall = func(firewall.State) error {
					m.cfg.Firewall = nil
					return errors.New("fake firewall failure")
				}
			}
			if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Publish: []string{"8080:80"}}); err == nil {
				t.Fatal("create succeeded, want the fake failure")
			}
			if len(ports.held) != 0 {
				t.Errorf("held after a failed create: %v", ports.held)
			}
			if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Publish: []string{"8080:80"}}); err != nil {
				t.Errorf("create again: %v", err)
			}
		})
	}
}

// TestPublishRanges: a range maps port to port; a host range for one port is a choice
// (the first port free of other sandboxes and other processes); a port of a range that
// is taken refuses the whole create, naming the value, with nothing held.
func TestPublishRanges(t *testing.T) {
	m, _ := newTestManager(t)
	ports := newFakePorts("udp 0.0.0.0:8001")
	m.cfg.Ports = ports
	a, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Publish: []string{"9000-9002:9000-9002", "127.0.0.1:7000-7001:80-81"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Port{{Proto: "tcp", HostPort: 9000, Port: 9000}, {Proto: "tcp", HostPort: 9001, Port: 9001},
		{Proto: "tcp", HostPort: 9002, Port: 9002}, {Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 7000, Port: 80},
		{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 7001, Port: 81}}
	if !slices.Equal(a.Ports, want) {
		t.Errorf("ports %+v, want %+v", a.Ports, want)
	}
	// 8000/udp is published by b, 8001/udp bound by another process: c gets 8002.
	if _, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "b", Publish: []string{"8000:80/udp"}}); err != nil {
		t.Fatal(err)
	}
	c, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "c", Publish: []string{"8000-8010:80/udp"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ports[0].HostPort != 8002 {
		t.Errorf("chosen host port %d, want 8002 (8000 is b's, 8001 another process's)", c.Ports[0].HostPort)
	}
	if got := ports.describe(c.ID); !slices.Equal(got, []string{"udp 0.0.0.0:8002 nat", "udp [::]:8002 proxy"}) {
		t.Errorf("c holds %v", got)
	}
	// A fixed port of another sandbox's range: Docker's words, naming the sandbox.
	_, err = m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "d", Publish: []string{"8002:90/udp"}})
	if want := `invalid publish "8002:90/udp": Bind for 0.0.0.0:8002 failed: port is already allocated (by sandbox c)`; errText(err) != want {
		t.Errorf("got  %s\nwant %s", errText(err), want)
	}
	// A range whose ports are all taken.
	_, err = m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "d", Publish: []string{"8000-8001:80/udp"}})
	if want := `invalid publish "8000-8001:80/udp": all ports are allocated (8000-8001)`; errText(err) != want {
		t.Errorf("got  %s\nwant %s", errText(err), want)
	}
	// All or nothing: 9101 of 9100-9102 is another process's.
	ports.taken["tcp 0.0.0.0:9101"] = true
	_, err = m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "d", Publish: []string{"9100-9102:80-82"}})
	if want := `invalid publish "9100-9102:80-82": bind 0.0.0.0:9101/tcp: address already in use (taken by another process)`; errText(err) != want {
		t.Errorf("got  %s\nwant %s", errText(err), want)
	}
	if len(ports.held) != 3 {
		t.Errorf("holders after a refused range: %d, want 3 (a, b, c)", len(ports.held))
	}
	if _, err := m.cfg.Store.Snapshot().SandboxByName("d"); err == nil {
		t.Error("sandbox d exists after refused creates")
	}
	// The same host port twice in one request.
	_, err = m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "d", Publish: []string{"9200:80", "9199-9200:81-82"}})
	if want := `invalid publish "9199-9200:81-82": host port 9200/tcp given twice`; errText(err) != want {
		t.Errorf("got  %s\nwant %s", errText(err), want)
	}
}

// TestPublishAllRestore: -P gives every exposed port an ephemeral host port, and a
// restart (a new Manager over the same store, as after kill -9) binds the same numbers.
func TestPublishAllRestore(t *testing.T) {
	m, _ := newTestManager(t)
	lo, _ := ephemeralRange()
	m.cfg.Ports = newFakePorts(fmt.Sprintf("tcp 0.0.0.0:%d", lo+1))
	sb, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", PublishAll: true,
		Expose: []string{"7000-7002", "53/udp"}, Publish: []string{"8080:80"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range sb.Ports {
		got = append(got, fmt.Sprintf("%d->%d/%s", p.HostPort, p.Port, p.Proto))
	}
	// lo+1 is another process's: skipped.
	want := []string{"8080->80/tcp", fmt.Sprintf("%d->7000/tcp", lo), fmt.Sprintf("%d->7001/tcp", lo+2),
		fmt.Sprintf("%d->7002/tcp", lo+3), fmt.Sprintf("%d->53/udp", lo+4)}
	if !slices.Equal(got, want) {
		t.Errorf("ports %v, want %v", got, want)
	}
	cfg := m.cfg
	ports := newFakePorts()
	cfg.Ports = ports
	m2 := New(cfg)
	if err := m2.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, b := range ports.held[sb.ID] {
		if b.Host.Addr().Is4() {
			held = append(held, fmt.Sprintf("%s %d", b.Proto, b.Host.Port()))
		}
	}
	wantHeld := []string{"tcp 8080", fmt.Sprintf("tcp %d", lo), fmt.Sprintf("tcp %d", lo+2), fmt.Sprintf("tcp %d", lo+3), fmt.Sprintf("udp %d", lo+4)}
	if !slices.Equal(held, wantHeld) {
		t.Errorf("held after restore %v, want %v", held, wantHeld)
	}
}

// TestPublishThousand: -p 10000-10999:10000-10999 makes 1,000 bindings, 2,000 sockets, and
// the firewall state gets one port each.
func TestPublishThousand(t *testing.T) {
	m, _ := newTestManager(t)
	ports := newFakePorts()
	m.cfg.Ports = ports
	var fw firewall.State
	m.cfg.Firewall = func(s firewall.State) error { fw = s; return nil }
	sb, err := m.CreateSandbox(t.Context(), api.SandboxCreate{Name: "a", Publish: []string{"10000-10999:10000-10999"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Ports) != 1000 || sb.Ports[999] != (store.Port{Proto: "tcp", HostPort: 10999, Port: 10999}) {
		t.Fatalf("%d ports, last %+v", len(sb.Ports), sb.Ports[len(sb.Ports)-1])
	}
	if n := len(ports.held[sb.ID]); n != 2000 {
		t.Errorf("%d sockets held, want 2000", n)
	}
	if n := len(fw.Ports); n != 1000 {
		t.Errorf("%d firewall ports, want 1000", n)
	}
	if err := m.RemoveSandbox(t.Context(), api.SandboxRemove{Sandbox: "a", Force: true}); err != nil {
		t.Fatal(err)
	}
	if len(ports.held) != 0 || len(fw.Ports) != 0 {
		t.Errorf("after rm: %d holders, %d firewall ports", len(ports.held), len(fw.Ports))
	}
}
