package resolver

import (
	"testing"
)

// BenchmarkLookup measures the per-query cost dnsd pays: one snapshot read per question.
func BenchmarkLookup(b *testing.B) {
	w := newWorld(b)
	snap := w.snap()
	for _, bc := range []struct {
		name, from, qname string
		qtype             uint16
	}{
		{"A_hit", "a", "b", TypeA},
		{"A_hit_alias_shared", "a", "shared", TypeA},
		{"A_hit_name_network", "a", "b.n1.", TypeA},
		{"A_link", "l", "bee", TypeA},
		{"AAAA_nodata", "a", "b", TypeAAAA},
		{"A_miss_forwarded", "a", "www.example.com.", TypeA},
		{"PTR_hit", "a", "3.0.1.10.in-addr.arpa.", TypePTR},
	} {
		id := w.sb[bc.from].ID
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res := Lookup(snap, id, bc.qname, bc.qtype); res.Kind == NotOurs && bc.name != "A_miss_forwarded" {
					b.Fatalf("%s: NotOurs", bc.qname)
				}
			}
		})
	}
}

// TestLookupAllocs keeps the hit path's allocation count from creeping up. Measured: 37 per
// A hit, of which the resolver makes one (the Addrs slice); the rest are go-memdb's, about
// 4 to 9 per store getter (index key, radix txn, iterator, result slice), for the five
// getters a hit needs (querier, its endpoints, their networks, the name, the owner's
// state). The bound leaves room for store changes; raise it only with a reason.
func TestLookupAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation check")
	}
	w := newWorld(t)
	snap := w.snap()
	id := w.sb["a"].ID
	got := testing.AllocsPerRun(100, func() { Lookup(snap, id, "b", TypeA) })
	const limit = 48
	if got > limit {
		t.Errorf("Lookup A hit: %v allocations; want at most %d", got, limit)
	}
}
