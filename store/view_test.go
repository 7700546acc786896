package store

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
)

// TestViewMatchesMemdb: after random inserts, replacements and deletions the view that
// Update maintains incrementally equals one built from scratch, and each view getter
// answers what its memdb counterpart answers.
func TestViewMatchesMemdb(t *testing.T) {
	s := NewMemory()
	rng := rand.New(rand.NewPCG(1, 2))
	netID := func(i int) string { return fmt.Sprintf("%064x", 0x100+i) }
	sbID := func(i int) string { return fmt.Sprintf("%064x", 0x200+i) }
	epID := func(n, sb int) string { return fmt.Sprintf("%032x%032x", 0x300+n, sb) }
	names := []string{"web", "db", "Shared", "cache", "WWW"}
	for round := range 300 {
		err := s.Update(func(tx *Tx) error {
			for range 1 + rng.IntN(3) {
				n, sb := rng.IntN(3), rng.IntN(12)
				switch rng.IntN(6) {
				case 0:
					nw := &Network{ID: netID(n), Name: fmt.Sprintf("n%d", n), Driver: DriverBridge}
					if err := tx.PutNetwork(nw); err != nil {
						return err
					}
				case 1:
					state := StateReady
					if rng.IntN(3) == 0 {
						state = StateCreating
					}
					if err := tx.PutSandbox(&Sandbox{ID: sbID(sb), Name: fmt.Sprintf("sb%d", sb), State: state}); err != nil {
						return err
					}
				case 2, 3:
					ep := &Endpoint{ID: epID(n, sb), NetworkID: netID(n), SandboxID: sbID(sb), Seq: uint64(rng.IntN(4)),
						IPv4: netip.AddrFrom4([4]byte{10, byte(n), 0, byte(1 + rng.IntN(20))})}
					if rng.IntN(2) == 0 {
						ep.IPv6 = netip.MustParseAddr(fmt.Sprintf("fd00::%x", 1+rng.IntN(20)))
					}
					for _, name := range names {
						if rng.IntN(2) == 0 {
							ep.DNSNames = append(ep.DNSNames, name)
						}
					}
					if err := tx.PutEndpoint(ep); err != nil {
						return err
					}
				case 4:
					if ep, err := tx.Endpoint(epID(n, sb)); err == nil {
						if err := tx.DeleteEndpoint(ep); err != nil {
							return err
						}
					}
				case 5:
					if got, err := tx.Sandbox(sbID(sb)); err == nil && rng.IntN(2) == 0 {
						if err := tx.DeleteSandbox(got); err != nil {
							return err
						}
					}
				}
			}
			if rng.IntN(10) == 0 {
				return fmt.Errorf("abort")
			}
			return nil
		})
		if err != nil && err.Error() != "abort" {
			t.Fatalf("round %d: %v", round, err)
		}
		snap := s.Snapshot()
		if want := buildView(snap.txn); !reflect.DeepEqual(snap.view, want) {
			t.Fatalf("round %d: incremental view differs from a fresh one\ngot:  %+v\nwant: %+v", round, snap.view, want)
		}
		tx := &Snapshot{txn: snap.txn} // no view: the memdb getters
		for sb := range 12 {
			if got, want := snap.JoinedEndpoints(sbID(sb)), tx.JoinedEndpoints(sbID(sb)); len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: JoinedEndpoints(%d): got %v; want %v", round, sb, got, want)
			}
			if got, want := snap.FindSandbox(sbID(sb)), tx.FindSandbox(sbID(sb)); got != want {
				t.Fatalf("round %d: FindSandbox(%d): got %v; want %v", round, sb, got, want)
			}
		}
		for n := range 3 {
			for _, name := range append(names, "SHARED", "nope") {
				if got, want := snap.NamedEndpoints(netID(n), name), tx.NamedEndpoints(netID(n), name); len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
					t.Fatalf("round %d: NamedEndpoints(%d, %s): got %v; want %v", round, n, name, got, want)
				}
			}
			for i := range 21 {
				a := netip.AddrFrom4([4]byte{10, byte(n), 0, byte(i)})
				if got, want := snap.AddressHolders(a), tx.AddressHolders(a); len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
					t.Fatalf("round %d: AddressHolders(%s): got %v; want %v", round, a, got, want)
				}
			}
		}
	}
}

// TestViewNoAllocs: the view getters allocate nothing, mixed case included.
func TestViewNoAllocs(t *testing.T) {
	s := NewMemory()
	n, sb, _ := fixture(t, s)
	snap := s.Snapshot()
	got := testing.AllocsPerRun(100, func() {
		_ = s.Snapshot()
		_ = snap.FindSandbox(sb.ID)
		_ = snap.FindNetwork(n.ID)
		_ = snap.JoinedEndpoints(sb.ID)
		_ = snap.NamedEndpoints(n.ID, "WwW")
		_ = snap.AddressHolders(netip.MustParseAddr("10.1.0.2"))
	})
	if got != 0 {
		t.Errorf("view getters: %v allocations; want 0", got)
	}
	if eps := snap.NamedEndpoints(n.ID, "WwW"); len(eps) != 1 {
		t.Errorf("NamedEndpoints(WwW) = %v; want the endpoint", eps)
	}
}
