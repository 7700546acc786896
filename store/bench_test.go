package store

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchUpdate measures what one sandbox create costs the store: the record in state
// creating with its endpoint and address, then the record made ready, with existing sandboxes
// already on the network, each with aliases network aliases.
func benchUpdate(b *testing.B, s *Store, existing, aliases int) {
	n := &Network{ID: strings.Repeat("a", 64), Name: "App", Driver: DriverBridge, Bridge: "br-aaaaaaaaaaaa",
		Subnets: []Subnet{{Subnet: netip.MustParsePrefix("10.1.0.0/16"), Gateway: netip.MustParseAddr("10.1.0.1")}},
		Options: map[string]string{"k": "v"}, Labels: map[string]string{}, Created: time.Unix(1, 0).UTC()}
	put := func(i int) {
		id := fmt.Sprintf("%064x", i+1)
		names := []string{fmt.Sprintf("s%d", i), id[:12]}
		if i < existing {
			for a := range aliases {
				names = append(names, fmt.Sprintf("s%d-a%d", i, a))
			}
		}
		sb := &Sandbox{ID: id, Name: fmt.Sprintf("s%d", i), Mode: ModeBridge, State: StateCreating, NetNSPath: "/run/netns/x" + id[:8], Created: time.Unix(2, 0).UTC()}
		ep := &Endpoint{ID: "e" + id[1:], NetworkID: n.ID, SandboxID: sb.ID, IfName: "eth0", HostVeth: VethName("e" + id[1:]),
			IPv4: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), DNSNames: names}
		if err := s.Update(func(tx *Tx) error {
			if err := tx.PutSandbox(sb); err != nil {
				return err
			}
			if err := tx.PutEndpoint(ep); err != nil {
				return err
			}
			return tx.PutAddress(&Address{NetworkID: n.ID, Addr: ep.IPv4, Owner: ep.ID})
		}); err != nil {
			b.Fatal(err)
		}
		r := sb.Copy()
		r.State = StateReady
		if err := s.Update(func(tx *Tx) error { return tx.PutSandbox(r) }); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutNetwork(n) }); err != nil {
		b.Fatal(err)
	}
	for i := range existing {
		put(i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		put(existing + i)
	}
}

func BenchmarkUpdate(b *testing.B) {
	for _, c := range []struct{ sandboxes, aliases int }{{100, 0}, {1000, 0}, {100, 100}} {
		name := fmt.Sprintf("%d/%d", c.sandboxes, c.aliases)
		b.Run("memory/"+name, func(b *testing.B) { benchUpdate(b, NewMemory(), c.sandboxes, c.aliases) })
		b.Run("disk/"+name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchUpdate(b, s, c.sandboxes, c.aliases)
		})
	}
}
