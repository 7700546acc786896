package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// viewNames are the DNS names the random commits give endpoints: mixed case, non-ASCII
// (folded by strings.ToLower, not on the stack) and longer than maxNameLen.
var viewNames = []string{"web", "db", "Shared", "cache", "WWW", "Ünï", "\u212Aelvin", strings.Repeat("Long", 70)}

// TestViewMatchesMemdb: after random commits (inserts, replacements that change names and
// addresses, deletions, aborted transactions) the view that Update maintains incrementally
// equals one rebuilt from memdb from scratch, holds exactly what memdb's indexes hold in
// every one of its maps, and every getter answers the same from the view as from memdb.
func TestViewMatchesMemdb(t *testing.T) {
	s := NewMemory()
	rng := rand.New(rand.NewPCG(1, 2))
	errAbort := errors.New("abort")
	for round := range 400 {
		err := s.Update(func(tx *Tx) error {
			for range 1 + rng.IntN(5) {
				if err := randomChange(tx, rng); err != nil {
					return err
				}
			}
			if rng.IntN(10) == 0 {
				return errAbort
			}
			return nil
		})
		if err != nil && !errors.Is(err, errAbort) {
			t.Fatalf("round %d: %v", round, err)
		}
		snap := s.Snapshot()
		checkView(t, snap)
		checkGetters(t, snap, &Snapshot{txn: snap.txn})
		if t.Failed() {
			t.Fatalf("round %d: view and memdb differ", round)
		}
	}
}

func viewNetID(i int) string    { return fmt.Sprintf("%064x", 0x100+i) }
func viewSbID(i int) string     { return fmt.Sprintf("%064x", 0x200+i) }
func viewEpID(n, sb int) string { return fmt.Sprintf("%032x%032x", 0x300+n, sb) }

// randomChange makes one change on 3 networks and 12 sandboxes.
func randomChange(tx *Tx, rng *rand.Rand) error {
	n, sb := rng.IntN(3), rng.IntN(12)
	switch rng.IntN(8) {
	case 0:
		return tx.PutNetwork(&Network{ID: viewNetID(n), Name: fmt.Sprintf("n%d", n), Driver: DriverBridge})
	case 1:
		if nw, err := tx.Network(viewNetID(n)); err == nil {
			return tx.DeleteNetwork(nw)
		}
	case 2:
		state := StateReady
		if rng.IntN(3) == 0 {
			state = StateCreating
		}
		return tx.PutSandbox(&Sandbox{ID: viewSbID(sb), Name: fmt.Sprintf("sb%d", sb), State: state})
	case 3, 4, 5:
		// Also a replacement: same ID, other names, sequence number and addresses.
		ep := &Endpoint{ID: viewEpID(n, sb), NetworkID: viewNetID(n), SandboxID: viewSbID(sb), Seq: uint64(rng.IntN(4)),
			IPv4: netip.AddrFrom4([4]byte{10, byte(rng.IntN(2) * n), 0, byte(1 + rng.IntN(20))})}
		if rng.IntN(2) == 0 {
			ep.IPv6 = netip.MustParseAddr(fmt.Sprintf("fd00::%x", 1+rng.IntN(20)))
		}
		for _, name := range viewNames {
			if rng.IntN(3) == 0 {
				ep.DNSNames = append(ep.DNSNames, name)
			}
		}
		return tx.PutEndpoint(ep)
	case 6:
		if ep, err := tx.Endpoint(viewEpID(n, sb)); err == nil {
			return tx.DeleteEndpoint(ep)
		}
	case 7:
		if got, err := tx.Sandbox(viewSbID(sb)); err == nil {
			return tx.DeleteSandbox(got)
		}
	}
	return nil
}

// checkView compares snap's view with memdb: each of its maps must have exactly one entry
// per key memdb's records yield, holding what memdb's index for that key holds, and the
// whole must equal the view buildView derives from scratch.
func checkView(t *testing.T, snap *Snapshot) {
	t.Helper()
	v := snap.view
	db := &Snapshot{txn: snap.txn} // no view: memdb's indexes

	sbs := all[Sandbox](db, tableSandboxes, indexID)
	if len(v.sandboxes) != len(sbs) {
		t.Errorf("view has %d sandboxes; memdb %d", len(v.sandboxes), len(sbs))
	}
	for _, sb := range sbs {
		if v.sandboxes[sb.ID] != sb {
			t.Errorf("view sandbox %s = %v; memdb %v", sb.ID, v.sandboxes[sb.ID], sb)
		}
	}
	nws := all[Network](db, tableNetworks, indexID)
	if len(v.networks) != len(nws) {
		t.Errorf("view has %d networks; memdb %d", len(v.networks), len(nws))
	}
	for _, nw := range nws {
		if v.networks[nw.ID] != nw {
			t.Errorf("view network %s = %v; memdb %v", nw.ID, v.networks[nw.ID], nw)
		}
	}

	// The keys the endpoints table yields.
	type netName struct{ netID, name string }
	wantJoined, wantNames, wantIPs := map[string]bool{}, map[netName]bool{}, map[netip.Addr]bool{}
	for _, ep := range all[Endpoint](db, tableEndpoints, indexID) {
		wantJoined[ep.SandboxID] = true
		for _, name := range ep.DNSNames {
			wantNames[netName{ep.NetworkID, strings.ToLower(name)}] = true
		}
		for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
			if a.IsValid() {
				wantIPs[a.Unmap()] = true
			}
		}
	}

	if len(v.joined) != len(wantJoined) {
		t.Errorf("view joins %d sandboxes; memdb %d", len(v.joined), len(wantJoined))
	}
	for sbID, list := range v.joined {
		if want := db.SandboxEndpoints(sbID); !wantJoined[sbID] || !reflect.DeepEqual(list, want) {
			t.Errorf("view joined[%s] = %v; memdb %v", sbID, list, want)
		}
	}

	names := 0
	for netID, m := range v.names {
		if m == nil || m.empty() {
			t.Errorf("view keeps an empty name map for network %s", netID)
			continue
		}
		for i, shard := range m {
			if shard != nil && len(shard) == 0 {
				t.Errorf("view keeps empty shard %d of network %s", i, netID)
			}
			for key, list := range shard {
				names++
				if shardOf(key) != i {
					t.Errorf("view name %q of network %s in shard %d; belongs in %d", key, netID, i, shardOf(key))
				}
				if want := db.EndpointsByName(netID, key); !wantNames[netName{netID, key}] || !reflect.DeepEqual(list, want) {
					t.Errorf("view names[%s][%q] = %v; memdb %v", netID, key, list, want)
				}
			}
		}
	}
	if names != len(wantNames) {
		t.Errorf("view has %d names; memdb %d", names, len(wantNames))
	}

	if len(v.byIP) != len(wantIPs) {
		t.Errorf("view has %d addresses; memdb %d", len(v.byIP), len(wantIPs))
	}
	for a, list := range v.byIP {
		if want := db.EndpointsByIP(a); !wantIPs[a] || !reflect.DeepEqual(list, want) {
			t.Errorf("view byIP[%s] = %v; memdb %v", a, list, want)
		}
	}

	// The same maps, shards and slices as the view built at Open.
	if !reflect.DeepEqual(v, buildView(snap.txn)) {
		t.Errorf("incremental view differs from one buildView derives from memdb")
	}
}

// checkGetters asks snap (with a view) and db (memdb only) the same questions, hits and
// misses, and wants the same answers.
func checkGetters(t *testing.T, snap, db *Snapshot) {
	t.Helper()
	same := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: view %v; memdb %v", what, got, want)
		}
	}
	for sb := range 13 {
		id := viewSbID(sb)
		got, gotErr := snap.Sandbox(id)
		want, wantErr := db.Sandbox(id)
		same("Sandbox("+id+")", []any{got, gotErr}, []any{want, wantErr})
		same("SandboxEndpoints("+id+")", snap.SandboxEndpoints(id), db.SandboxEndpoints(id))
	}
	for n := range 4 {
		id := viewNetID(n)
		got, gotErr := snap.Network(id)
		want, wantErr := db.Network(id)
		same("Network("+id+")", []any{got, gotErr}, []any{want, wantErr})
		for _, name := range append(viewNames, "SHARED", "ünï", "\u212AELVIN", "kelvin", strings.Repeat("lONG", 70), "nope", "") {
			same(fmt.Sprintf("EndpointsByName(%d, %q)", n, name), snap.EndpointsByName(id, name), db.EndpointsByName(id, name))
		}
	}
	for i := range 22 {
		for _, a := range []netip.Addr{
			netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}),
			netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}),
			netip.AddrFrom16(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}).As16()), // v4-mapped
			netip.MustParseAddr(fmt.Sprintf("fd00::%x", i)),
		} {
			same("EndpointsByIP("+a.String()+")", snap.EndpointsByIP(a), db.EndpointsByIP(a))
		}
	}
}

// TestTxReadsOwnWrites: inside Update the getters read memdb, so they see the transaction's
// own changes, which the published snapshot (and its view) does not have yet.
func TestTxReadsOwnWrites(t *testing.T) {
	s := NewMemory()
	n, _, ep := fixture(t, s)
	sb2 := &Sandbox{ID: strings.Repeat("d", 64), Name: "db", State: StateReady}
	ep2 := &Endpoint{ID: strings.Repeat("e", 64), NetworkID: n.ID, SandboxID: sb2.ID, IPv4: netip.MustParseAddr("10.1.0.3"),
		DNSNames: []string{"db", "www"}}
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutSandbox(sb2); err != nil {
			return err
		}
		if err := tx.PutEndpoint(ep2); err != nil {
			return err
		}
		if got, err := tx.Sandbox(sb2.ID); err != nil || got != sb2 {
			t.Errorf("tx.Sandbox(new) = %v, %v; want it", got, err)
		}
		if got := tx.SandboxEndpoints(sb2.ID); len(got) != 1 || got[0] != ep2 {
			t.Errorf("tx.SandboxEndpoints(new) = %v; want its endpoint", got)
		}
		if got := tx.EndpointsByName(n.ID, "WWW"); len(got) != 2 || got[0] != ep || got[1] != ep2 {
			t.Errorf("tx.EndpointsByName(WWW) = %v; want both, by ID", got)
		}
		if got := tx.EndpointsByIP(ep2.IPv4); len(got) != 1 || got[0] != ep2 {
			t.Errorf("tx.EndpointsByIP(new) = %v; want the new endpoint", got)
		}
		if _, err := s.Snapshot().Sandbox(sb2.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("published Sandbox(new) before commit: err %v; want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Snapshot().EndpointsByName(n.ID, "www"); len(got) != 2 {
		t.Errorf("after commit EndpointsByName(www) = %v; want both", got)
	}
}

// TestViewNoAllocs: the getters of the DNS answer path allocate nothing on a published
// snapshot, for hits and misses, mixed case included.
func TestViewNoAllocs(t *testing.T) {
	s := NewMemory()
	n, sb, _ := fixture(t, s)
	snap := s.Snapshot()
	addr := netip.MustParseAddr("10.1.0.2")
	got := testing.AllocsPerRun(100, func() {
		_ = s.Snapshot()
		_, _ = snap.Sandbox(sb.ID)
		_, _ = snap.Sandbox("nope")
		_, _ = snap.Network(n.ID)
		_, _ = snap.Network("nope")
		_ = snap.SandboxEndpoints(sb.ID)
		_ = snap.EndpointsByName(n.ID, "WwW")
		_ = snap.EndpointsByName(n.ID, "nope")
		_ = snap.EndpointsByIP(addr)
	})
	if got != 0 {
		t.Errorf("answer-path getters: %v allocations; want 0", got)
	}
	if eps := snap.EndpointsByName(n.ID, "WwW"); len(eps) != 1 {
		t.Errorf("EndpointsByName(WwW) = %v; want the endpoint", eps)
	}
}

// TestSharedSlicesClipped: appending to a returned slice copies it, so a caller that
// appends cannot write into the view's backing array under another reader.
func TestSharedSlicesClipped(t *testing.T) {
	s := NewMemory()
	n, sb, ep := fixture(t, s)
	snap := s.Snapshot()
	for name, list := range map[string][]*Endpoint{
		"SandboxEndpoints": snap.SandboxEndpoints(sb.ID),
		"EndpointsByName":  snap.EndpointsByName(n.ID, "web"),
		"EndpointsByIP":    snap.EndpointsByIP(ep.IPv4),
	} {
		if len(list) != cap(list) {
			t.Errorf("%s: len %d cap %d; want them equal", name, len(list), cap(list))
		}
	}
}
