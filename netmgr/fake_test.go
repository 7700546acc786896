package netmgr

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"testing"

	"berth/store"
)

// fakeKernel records kernel objects in maps, so bookkeeping and IPAM run without root.
type fakeKernel struct {
	mu     sync.Mutex
	links  map[string]string // name -> kind ("bridge", "veth")
	netns  map[string]bool
	uts    map[string]string // path -> "hostname.domainname"
	routes []netip.Prefix
	failOn string // method name that fails once, for undo tests
	gw     map[string][2]netip.Addr
	// vxlans holds the VXLAN devices (also in links, kind "vxlan") and peers each one's
	// entries, keyed by MAC.
	vxlans map[string]VxlanSpec
	peers  map[string]map[string]VxlanPeer
	// Macvlan and ipvlan: parents berth made (also in links, kind "vlan" or "veth-parent"
	// with the peer as "veth-peer"), the links inside each netns (path -> ifname -> the
	// spec that made it) and the shims (also in links, kind "shim").
	parents map[string]ParentSpec
	nsLinks map[string]map[string]SubIfSpec
	shims   map[string]ShimSpec
	// noModule names the kernel modules the fake kernel lacks ("8021q", "ipvlan"): what
	// needs one fails as the real kernel does.
	noModule map[string]bool

	vethErr    error         // or nil: what AddVeth returns instead of succeeding
	deleteGate chan struct{} // or nil: DeleteLink of a veth waits for it to be closed
	// done, if set, is called (with mu held) after each change a method made, with the
	// method's name: tests cancel a context there, as if it were done during that step.
	done func(op string)
}

// did reports a change to done; mu is held.
func (k *fakeKernel) did(op string) {
	if k.done != nil {
		k.done(op)
	}
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{links: map[string]string{"lo": "device", "eth0": "device"}, netns: map[string]bool{}, uts: map[string]string{},
		gw: map[string][2]netip.Addr{}, vxlans: map[string]VxlanSpec{}, peers: map[string]map[string]VxlanPeer{},
		parents: map[string]ParentSpec{}, nsLinks: map[string]map[string]SubIfSpec{}, shims: map[string]ShimSpec{}, noModule: map[string]bool{}}
}

func (k *fakeKernel) fail(op string) error {
	if k.failOn == op {
		k.failOn = ""
		return fmt.Errorf("fake %s failure", op)
	}
	return nil
}

func (k *fakeKernel) EnsureBridge(spec BridgeSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("EnsureBridge"); err != nil {
		return err
	}
	k.links[spec.Name] = "bridge"
	k.did("EnsureBridge")
	return nil
}

func (k *fakeKernel) DeleteLink(name string) error {
	k.mu.Lock()
	gate := k.deleteGate
	if k.links[name] != "veth" {
		gate = nil
	}
	k.mu.Unlock()
	if gate != nil {
		<-gate
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("DeleteLink"); err != nil {
		return err
	}
	if k.links[name] == "veth-parent" || k.links[name] == "veth-peer" {
		// Either end of the internal parent's veth takes the other with it.
		if p, ok := k.parents[name]; ok {
			delete(k.links, PeerName(p.Name))
		}
		for n, p := range k.parents {
			if PeerName(p.Name) == name {
				delete(k.links, n)
				delete(k.parents, n)
			}
		}
	}
	delete(k.links, name)
	delete(k.parents, name)
	delete(k.shims, name)
	k.did("DeleteLink")
	return nil
}

func (k *fakeKernel) LinkNames() ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for n := range k.links {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func (k *fakeKernel) RouteDsts() ([]netip.Prefix, error) { return k.routes, nil }

func (k *fakeKernel) CreateNetNS(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("CreateNetNS"); err != nil {
		return err
	}
	k.netns[path] = true
	k.did("CreateNetNS")
	return nil
}

func (k *fakeKernel) PinNetNS(path, from string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.netns[path] = true
	k.did("PinNetNS")
	return nil
}

func (k *fakeKernel) DeleteNetNS(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.netns, path)
	delete(k.gw, path)      // the routes live in the netns
	delete(k.nsLinks, path) // and so do its links
	k.did("DeleteNetNS")
	return nil
}

func (k *fakeKernel) CreateUTSNS(path, hostname, domainname string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("CreateUTSNS"); err != nil {
		return err
	}
	k.uts[path] = hostname + "." + domainname
	k.did("CreateUTSNS")
	return nil
}

func (k *fakeKernel) DeleteUTSNS(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.uts, path)
	k.did("DeleteUTSNS")
	return nil
}

func (k *fakeKernel) NetNSExists(path string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.netns[path]
}

func (k *fakeKernel) AddVeth(spec VethSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("AddVeth"); err != nil {
		return err
	}
	if k.vethErr != nil {
		return k.vethErr
	}
	if !k.netns[spec.NetNSPath] {
		return fmt.Errorf("no netns %s", spec.NetNSPath)
	}
	k.links[spec.HostName] = "veth"
	k.did("AddVeth")
	return nil
}

func (k *fakeKernel) SetDefaultRoutes(nsPath, if4 string, gw4 netip.Addr, if6 string, gw6 netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gw[nsPath] = [2]netip.Addr{gw4, gw6}
	k.did("SetDefaultRoutes")
	return nil
}

// fakeUnderlayMTU is the MTU of the fake kernel's underlay device.
const fakeUnderlayMTU = 1500

func (k *fakeKernel) EnsureVxlan(spec VxlanSpec) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("EnsureVxlan"); err != nil {
		return 0, err
	}
	if k.links[spec.Bridge] != "bridge" {
		return 0, fmt.Errorf("fake EnsureVxlan %s: no bridge %s", spec.Name, spec.Bridge)
	}
	if old, ok := k.vxlans[spec.Name]; ok && (old.VNI != spec.VNI || old.Local != spec.Local) {
		return 0, fmt.Errorf("fake EnsureVxlan %s: exists with vni %d local %s", spec.Name, old.VNI, old.Local)
	}
	k.links[spec.Name] = "vxlan"
	k.vxlans[spec.Name] = spec
	if k.peers[spec.Name] == nil {
		k.peers[spec.Name] = map[string]VxlanPeer{}
	}
	k.did("EnsureVxlan")
	return fakeUnderlayMTU - 50, nil
}

func (k *fakeKernel) DeleteVxlan(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.links, name)
	delete(k.vxlans, name)
	delete(k.peers, name)
	k.did("DeleteVxlan")
	return nil
}

func (k *fakeKernel) AddVxlanPeer(dev string, p VxlanPeer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("AddVxlanPeer"); err != nil {
		return err
	}
	if k.peers[dev] == nil {
		return fmt.Errorf("fake AddVxlanPeer: no vxlan %s", dev)
	}
	k.peers[dev][p.MAC.String()] = p
	k.did("AddVxlanPeer")
	return nil
}

func (k *fakeKernel) DeleteVxlanPeer(dev string, p VxlanPeer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.peers[dev], p.MAC.String())
	k.did("DeleteVxlanPeer")
	return nil
}

func (k *fakeKernel) SyncVxlanPeers(dev string, want []VxlanPeer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.peers[dev] == nil {
		return fmt.Errorf("fake SyncVxlanPeers: no vxlan %s", dev)
	}
	m := map[string]VxlanPeer{}
	for _, p := range want {
		m[p.MAC.String()] = p
	}
	k.peers[dev] = m
	k.did("SyncVxlanPeers")
	return nil
}

// vxlanPeers returns the peers programmed on dev, as "MAC IP@HOST" sorted.
func (k *fakeKernel) vxlanPeers(dev string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for mac, p := range k.peers[dev] {
		out = append(out, fmt.Sprintf("%s %v@%s", mac, p.Addrs, p.Host))
	}
	sort.Strings(out)
	return out
}

func (k *fakeKernel) EnsureParent(spec ParentSpec) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("EnsureParent"); err != nil {
		return false, err
	}
	if _, ok := k.links[spec.Name]; ok {
		return false, nil
	}
	switch {
	case spec.Internal:
		k.links[spec.Name] = "veth-parent"
		k.links[PeerName(spec.Name)] = "veth-peer"
	case spec.VLAN != 0:
		if _, ok := k.links[spec.Link]; !ok {
			return false, fmt.Errorf("parent interface %s not found (the lower link of %s)", spec.Link, spec.Name)
		}
		if k.noModule["8021q"] {
			return false, fmt.Errorf("parent %s: create: 802.1q VLANs need the 8021q kernel module (modprobe 8021q): operation not supported", spec.Name)
		}
		k.links[spec.Name] = "vlan"
	default:
		return false, fmt.Errorf("parent interface %s not found", spec.Name)
	}
	k.parents[spec.Name] = spec
	k.did("EnsureParent")
	return true, nil
}

func (k *fakeKernel) AddSubIf(spec SubIfSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("AddSubIf"); err != nil {
		return err
	}
	if !k.netns[spec.NetNSPath] {
		return fmt.Errorf("fake AddSubIf: no netns %s", spec.NetNSPath)
	}
	if _, ok := k.links[spec.Parent]; !ok {
		return fmt.Errorf("fake AddSubIf: parent interface %s not found", spec.Parent)
	}
	switch {
	case spec.Kind != "macvlan" && spec.Kind != "ipvlan":
		return fmt.Errorf("fake AddSubIf: kind %q", spec.Kind)
	case spec.Kind == "ipvlan" && len(spec.MAC) != 0:
		return fmt.Errorf("fake AddSubIf: mac %s on ipvlan", spec.MAC)
	case spec.Kind == "ipvlan" && k.noModule["ipvlan"]:
		return fmt.Errorf("create ipvlan %s: add: ipvlan needs the ipvlan kernel module (modprobe ipvlan): operation not supported", spec.IfName)
	}
	if k.nsLinks[spec.NetNSPath] == nil {
		k.nsLinks[spec.NetNSPath] = map[string]SubIfSpec{}
	}
	spec.Addrs = slices.Clone(spec.Addrs)
	k.nsLinks[spec.NetNSPath][spec.IfName] = spec // a stale one is replaced
	k.did("AddSubIf")
	return nil
}

func (k *fakeKernel) DeleteLinkIn(nsPath, ifName string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("DeleteLinkIn"); err != nil {
		return err
	}
	delete(k.nsLinks[nsPath], ifName)
	k.did("DeleteLinkIn")
	return nil
}

func (k *fakeKernel) EnsureShim(spec ShimSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail("EnsureShim"); err != nil {
		return err
	}
	if _, ok := k.links[spec.Parent]; !ok {
		return fmt.Errorf("fake EnsureShim: parent interface %s not found", spec.Parent)
	}
	if !spec.Addr.IsValid() {
		return fmt.Errorf("fake EnsureShim %s: no address", spec.Name)
	}
	spec.Routes = slices.Clone(spec.Routes)
	k.links[spec.Name] = "shim"
	k.shims[spec.Name] = spec
	k.did("EnsureShim")
	return nil
}

// subIfs returns the sub-interfaces in the netns at path, as "IFNAME KIND/MODE on PARENT
// MAC ADDRS" sorted.
func (k *fakeKernel) subIfs(path string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for name, s := range k.nsLinks[path] {
		out = append(out, fmt.Sprintf("%s %s/%s on %s %s %v", name, s.Kind, s.Mode, s.Parent, s.MAC, s.Addrs))
	}
	sort.Strings(out)
	return out
}

// shimRoutes returns the routes of shim name, sorted; nil if there is no such shim.
func (k *fakeKernel) shimRoutes(name string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.shims[name]
	if !ok {
		return nil
	}
	out := []string{}
	for _, r := range s.Routes {
		out = append(out, r.String())
	}
	sort.Strings(out)
	return out
}

// newTestManager returns a restored Manager over a memory store and a fake kernel.
func newTestManager(t *testing.T) (*Manager, *fakeKernel) {
	t.Helper()
	k := newFakeKernel()
	dir := t.TempDir()
	m := New(Config{Store: store.NewMemory(), Kernel: k, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NetNSDir: dir + "/netns", FilesDir: dir + "/etc", RunDir: dir + "/state"})
	if err := m.Restore(t.Context()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return m, k
}
