package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func fixture(t *testing.T, s *Store) (*Network, *Sandbox, *Endpoint) {
	t.Helper()
	n := &Network{ID: strings.Repeat("a", 64), Name: "App", Driver: DriverBridge, Bridge: "br-aaaaaaaaaaaa",
		Subnets: []Subnet{{Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}},
		Options: map[string]string{"k": "v"}, Labels: map[string]string{}, Created: time.Unix(1, 0).UTC()}
	sb := &Sandbox{ID: strings.Repeat("b", 64), Name: "Web", Mode: ModeBridge, State: StateReady, NetNSPath: "/run/netns/Web",
		DNS: []string{"10.1.0.53"}, Created: time.Unix(2, 0).UTC()}
	ep := &Endpoint{ID: strings.Repeat("c", 64), NetworkID: n.ID, SandboxID: sb.ID, IfName: "eth0", HostVeth: VethName(strings.Repeat("c", 64)),
		IPv4: netip.MustParseAddr("10.1.0.2"), Aliases: []string{"WWW"}, DNSNames: []string{"web", "www", "bbbbbbbbbbbb"},
		Links: []Link{{Target: "db", Alias: "DataBase"}}}
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutNetwork(n); err != nil {
			return err
		}
		if err := tx.PutSandbox(sb); err != nil {
			return err
		}
		if err := tx.PutEndpoint(ep); err != nil {
			return err
		}
		return tx.PutAddress(&Address{NetworkID: n.ID, Addr: ep.IPv4, Owner: ep.ID})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, sb, ep
}

// TestIndexes asks a published snapshot (which reads its view where it has one) and the
// same commit without a view (memdb's indexes, as inside Update) the same questions.
func TestIndexes(t *testing.T) {
	s := NewMemory()
	n, sb, ep := fixture(t, s)
	for name, snap := range map[string]*Snapshot{"view": s.Snapshot(), "memdb": {txn: s.Snapshot().txn}} {
		t.Run(name, func(t *testing.T) {
			if got, err := snap.NetworkByName("app"); err != nil || got.ID != n.ID {
				t.Errorf("NetworkByName(app) = %v, %v", got, err)
			}
			if got, err := snap.SandboxByName("WEB"); err != nil || got.ID != sb.ID {
				t.Errorf("SandboxByName(WEB) = %v, %v", got, err)
			}
			if got, err := snap.Sandbox(sb.ID); err != nil || got.ID != sb.ID {
				t.Errorf("Sandbox = %v, %v", got, err)
			}
			for _, name := range []string{"web", "WWW", "bbbbbbbbbbbb"} {
				if got := snap.EndpointsByName(n.ID, name); len(got) != 1 || got[0].ID != ep.ID {
					t.Errorf("EndpointsByName(%s) = %v", name, got)
				}
			}
			if got := snap.EndpointsByName("other", "web"); len(got) != 0 {
				t.Errorf("EndpointsByName on another network = %v", got)
			}
			if got := snap.EndpointsByLink(sb.ID, "database"); len(got) != 1 {
				t.Errorf("EndpointsByLink(database) = %v", got)
			}
			if got := snap.EndpointsByIP(netip.MustParseAddr("10.1.0.2")); len(got) != 1 {
				t.Errorf("EndpointsByIP = %v", got)
			}
			if got := snap.SandboxEndpoints(sb.ID); len(got) != 1 || got[0].ID != ep.ID {
				t.Errorf("SandboxEndpoints = %v", got)
			}
			if _, err := snap.Network("nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Network(nope) err = %v, want ErrNotFound", err)
			}
			if _, err := snap.Sandbox("nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Sandbox(nope) err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestIntegrity(t *testing.T) {
	s := NewMemory()
	n, sb, ep := fixture(t, s)
	cases := []struct {
		name string
		fn   func(tx *Tx) error
	}{
		{"network name", func(tx *Tx) error {
			return tx.PutNetwork(&Network{ID: strings.Repeat("d", 64), Name: "APP", Bridge: "br-x"})
		}},
		{"bridge", func(tx *Tx) error {
			return tx.PutNetwork(&Network{ID: strings.Repeat("d", 64), Name: "x", Bridge: n.Bridge})
		}},
		{"sandbox name", func(tx *Tx) error { return tx.PutSandbox(&Sandbox{ID: strings.Repeat("d", 64), Name: "web"}) }},
		{"endpoint per network", func(tx *Tx) error {
			return tx.PutEndpoint(&Endpoint{ID: strings.Repeat("d", 64), NetworkID: n.ID, SandboxID: sb.ID})
		}},
		{"address", func(tx *Tx) error {
			return tx.PutAddress(&Address{NetworkID: n.ID, Addr: ep.IPv4, Owner: "someone"})
		}},
	}
	for _, tc := range cases {
		if err := s.Update(tc.fn); !errors.Is(err, ErrConflict) {
			t.Errorf("%s: err = %v, want ErrConflict", tc.name, err)
		}
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	s := NewMemory()
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutSandbox(&Sandbox{ID: strings.Repeat("e", 64), Name: "x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || len(s.Snapshot().Sandboxes()) != 0 {
		t.Fatalf("failed update left %d sandboxes (err %v)", len(s.Snapshot().Sandboxes()), err)
	}
}

func TestPersistRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n, sb, ep := fixture(t, s)
	// An update and a delete must reach the disk too.
	sb2 := sb.Copy()
	sb2.Hostname = "h"
	extra := &Address{NetworkID: n.ID, Addr: netip.MustParseAddr("10.1.0.9"), Owner: "x"}
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutAddress(extra); err != nil {
			return err
		}
		return tx.PutSandbox(sb2)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.ReleaseOwner("x") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap := s.Snapshot()
	gotN, _ := snap.Network(n.ID)
	gotSB, _ := snap.Sandbox(sb.ID)
	gotEP, _ := snap.Endpoint(ep.ID)
	if !reflect.DeepEqual(gotN, n) || !reflect.DeepEqual(gotSB, sb2) || !reflect.DeepEqual(gotEP, ep) {
		t.Errorf("round trip differs:\n%+v\n%+v\n%+v", gotN, gotSB, gotEP)
	}
	if a := snap.NetworkAddresses(n.ID); len(a) != 1 || a[0].Addr != ep.IPv4 {
		t.Errorf("addresses after reload = %v, want only %s", a, ep.IPv4)
	}
}

func TestDamagedStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, []byte("this is not a bbolt file, padded to look big enough.............................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................."), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(damaged) err = %v, want an error naming the file", err)
	}
	if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), "this is not") {
		t.Errorf("damaged file was rewritten (silent reset)")
	}
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open err = %v, want ErrLocked", err)
	}
}

// TestDependencyIndexes covers the indexes netmgr uses instead of scanning every sandbox:
// container-mode sharers, publishing sandboxes and legacy-link dependents.
func TestDependencyIndexes(t *testing.T) {
	s := NewMemory()
	n, sb, ep := fixture(t, s)
	db := &Sandbox{ID: strings.Repeat("d", 64), Name: "DB", Mode: ModeBridge, State: StateReady, Seq: 2,
		Ports: []Port{{Proto: "tcp", Port: 5432, HostPort: 15432}}}
	side := &Sandbox{ID: strings.Repeat("e", 64), Name: "side", Mode: ModeContainer, Container: sb.ID, Seq: 3}
	other := &Endpoint{ID: strings.Repeat("f", 64), NetworkID: n.ID, SandboxID: db.ID, IfName: "eth0",
		Links: []Link{{Target: "DB", Alias: "self"}, {Target: "web"}}}
	err := s.Update(func(tx *Tx) error {
		for _, x := range []*Sandbox{db, side} {
			if err := tx.PutSandbox(x); err != nil {
				return err
			}
		}
		return tx.PutEndpoint(other)
	})
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if got := snap.SandboxesSharing(sb.ID); len(got) != 1 || got[0].ID != side.ID {
		t.Errorf("SandboxesSharing(web) = %v; want side", got)
	}
	if got := snap.SandboxesSharing(db.ID); len(got) != 0 {
		t.Errorf("SandboxesSharing(db) = %v; want none", got)
	}
	if got := snap.PublishingSandboxes(); len(got) != 1 || got[0].ID != db.ID {
		t.Errorf("PublishingSandboxes = %v; want db", got)
	}
	if got := snap.EndpointsLinkingTo("db"); len(got) != 2 || got[0].ID != ep.ID || got[1].ID != other.ID {
		t.Errorf("EndpointsLinkingTo(db) = %v; want both endpoints", got)
	}
	if got := snap.EndpointsLinkingTo("WEB"); len(got) != 1 || got[0].ID != other.ID {
		t.Errorf("EndpointsLinkingTo(WEB) = %v; want db's endpoint", got)
	}
	if got := snap.LinkingEndpoints(); len(got) != 2 || got[0].ID != ep.ID || got[1].ID != other.ID {
		t.Errorf("LinkingEndpoints = %v; want both endpoints once each", got)
	}
}

// TestUpdateLater: changes of UpdateLater are visible at once and reach the disk before the
// changes of any later commit (here one that reuses the address they freed, which the
// address index would refuse to load in the other order), and at Close.
func TestUpdateLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n, sb, ep := fixture(t, s)
	if err := s.UpdateLater(func(tx *Tx) error {
		if err := tx.ReleaseOwner(ep.ID); err != nil {
			return err
		}
		if err := tx.DeleteEndpoint(ep); err != nil {
			return err
		}
		return tx.DeleteSandbox(sb)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot().Sandbox(sb.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("sandbox after UpdateLater: %v; want ErrNotFound at once", err)
	}
	reuse := &Address{NetworkID: n.ID, Addr: ep.IPv4, Owner: "y"}
	if err := s.Update(func(tx *Tx) error { return tx.PutAddress(reuse) }); err != nil {
		t.Fatal(err)
	}
	onDisk := func(table, key string) bool {
		var found bool
		s.disk.db.View(func(btx *bolt.Tx) error {
			found = btx.Bucket([]byte(table)).Get([]byte(key)) != nil
			return nil
		})
		return found
	}
	if onDisk(tableSandboxes, sb.ID) || !onDisk(tableAddresses, primaryKey(reuse)) {
		t.Errorf("after a durable commit: removed sandbox on disk %v, reused address on disk %v; want false, true",
			onDisk(tableSandboxes, sb.ID), onDisk(tableAddresses, primaryKey(reuse)))
	}
	if err := s.UpdateLater(func(tx *Tx) error { return tx.ReleaseOwner("y") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap := s.Snapshot()
	if len(snap.Sandboxes()) != 0 || len(snap.NetworkAddresses(n.ID)) != 0 || len(snap.Networks()) != 1 {
		t.Errorf("after reopen: %d sandboxes, %d addresses, %d networks; want 0, 0, 1",
			len(snap.Sandboxes()), len(snap.NetworkAddresses(n.ID)), len(snap.Networks()))
	}
}
