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
// already on the network.
func benchUpdate(b *testing.B, s *Store, existing int) {
	n := &Network{ID: strings.Repeat("a", 64), Name: "App", Driver: DriverBridge, Bridge: "br-aaaaaaaaaaaa",
		Subnets: []Subnet{{Subnet: netip.MustParsePrefix("10.1.0.0/16"), Gateway: netip.MustParseAddr("10.1.0.1")}},
		Options: map[string]string{"k": "v"}, Labels: map[string]string{}, Created: time.Unix(1, 0).UTC()}
	put := func(i int) {
		id := fmt.Sprintf("%064x", i+1)
		sb := &Sandbox{ID: id, Name: fmt.Sprintf("s%d", i), Mode: ModeBridge, State: StateCreating, NetNSPath: "/run/netns/x" + id[:8], Created: time.Unix(2, 0).UTC()}
		ep := &Endpoint{ID: "e" + id[1:], NetworkID: n.ID, SandboxID: sb.ID, IfName: "eth0", HostVeth: VethName("e" + id[1:]),
			IPv4: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), DNSNames: []string{sb.Name, id[:12]}}
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
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("memory/%d", n), func(b *testing.B) { benchUpdate(b, NewMemory(), n) })
		b.Run(fmt.Sprintf("disk/%d", n), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchUpdate(b, s, n)
		})
	}
}
