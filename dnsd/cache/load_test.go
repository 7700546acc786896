package cache

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// realistic returns the i-th of a mix of replies seen by a forwarder: A with 1 to 4
// addresses, AAAA, a CNAME chain to an A, NXDOMAIN with a SOA; names of 10 to 60 bytes;
// half the queries with EDNS.
func realistic(t testing.TB, i int) (q, r *dns.Msg) {
	t.Helper()
	label := fmt.Sprintf("h%d-", i)
	n := 10 + i%51 // text length, with the trailing dot
	name := label + strings.Repeat("x", max(n-len(label)-len(".example.")-1, 1)) + ".example."
	edns := i%2 == 0
	switch i % 4 {
	case 0:
		q = query(t, name, dns.TypeA, edns, false)
		var ans []string
		for j := 0; j <= i/4%4; j++ {
			ans = append(ans, fmt.Sprintf("%s 300 IN A 192.0.%d.%d", name, i%250, j))
		}
		r = reply(t, q, 0, ans, nil, nil)
	case 1:
		q = query(t, name, dns.TypeAAAA, edns, false)
		r = reply(t, q, 0, []string{name + " 300 IN AAAA 2001:db8::" + fmt.Sprintf("%x", i%65535)}, nil, nil)
	case 2:
		q = query(t, name, dns.TypeA, edns, false)
		r = reply(t, q, 0, []string{
			name + " 300 IN CNAME edge" + fmt.Sprint(i%97) + ".cdn.example.net.",
			"edge" + fmt.Sprint(i%97) + ".cdn.example.net. 60 IN A 198.51.100." + fmt.Sprint(i%250),
		}, nil, nil)
	default:
		q = query(t, name, dns.TypeA, edns, false)
		r = reply(t, q, dns.RcodeNameError, nil, []string{soa}, nil)
	}
	return q, r
}

// heap is the live heap after a full collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 100,000 entries")
	}
	const n = 100_000
	before := heap()
	c := New(Config{MaxEntries: 2 * n, MaxBytes: 1 << 30})
	p := c.Partition("10.0.0.1:53 host")
	for i := range n {
		q, r := realistic(t, i)
		if ok, why := c.put(p, pack(t, q), pack(t, r), "10.0.0.1:53"); !ok {
			t.Fatalf("entry %d refused: %s", i, why)
		}
	}
	after := heap()
	s := c.Stats()
	runtime.KeepAlive(c)
	if s.Entries != n {
		t.Fatalf("%d entries, want %d", s.Entries, n)
	}
	grew := int64(after) - int64(before)
	t.Logf("%d entries: heap grew %d bytes (%.1f MiB), %d bytes per entry; accounted %d bytes, %d per entry (%.2fx the heap)",
		n, grew, float64(grew)/(1<<20), grew/n, s.Bytes, s.Bytes/n, float64(s.Bytes)/float64(grew))
	if grew > 64<<20 {
		t.Errorf("heap grew %d bytes for %d entries, want <= 64 MiB", grew, n)
	}
	if s.Bytes > 2*grew || 2*s.Bytes < grew {
		t.Errorf("accounted %d bytes, measured %d: want within 2x", s.Bytes, grew)
	}
}

// TestConcurrent runs readers, writers, flushes and stats on several partitions of a
// small cache (evicting all the time); run it with -race.
func TestConcurrent(t *testing.T) {
	c := New(Config{MaxEntries: 1024, MaxBytes: 1024 * 400})
	const parts, names = 4, 499 // prime to 4: every name in every partition
	qs := make([][]byte, names)
	rs := make([][]byte, names)
	for i := range names {
		q, r := realistic(t, i)
		qs[i], rs[i] = pack(t, q), pack(t, r)
	}
	var ids [parts]uint32
	for i := range ids {
		ids[i] = c.Partition(fmt.Sprintf("10.0.0.%d:53 host", i))
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(500 * time.Millisecond)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, 0, 4096)
			for i := g; time.Now().Before(deadline); i++ {
				k, p := i%names, ids[i%parts]
				switch i % 7 {
				case 0, 1:
					c.Put(p, qs[k], rs[k], "u")
				case 2:
					if i%1000 == 2 {
						c.Flush(p)
					}
				case 3:
					_ = c.Stats()
				default:
					if b, _, _, ok := c.Get(p, qs[k], 65535, dst); ok {
						var m dns.Msg
						if err := m.Unpack(b); err != nil {
							t.Errorf("unpack: %v", err)
							return
						}
						dst = b
					}
				}
			}
		}()
	}
	wg.Wait()
	s := c.Stats()
	if s.Entries > 1024 || s.Bytes > 1024*400 || s.Evictions == 0 {
		t.Errorf("stats %+v: over the bounds, or no evictions", s)
	}
	t.Logf("stats %+v", s)
}

func benchEntries(b *testing.B, c *Cache, n int) [][]byte {
	qs := make([][]byte, n)
	for i := range n {
		q, r := realistic(b, i*4) // A answers
		qs[i] = pack(b, q)
		if !c.Put(1, qs[i], pack(b, r), "10.0.0.1:53") {
			b.Fatal("put refused")
		}
	}
	return qs
}

func BenchmarkGetHit(b *testing.B) {
	c := New(Config{MaxEntries: 10_000})
	qs := benchEntries(b, c, 1000)
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, _, ok := c.Get(1, qs[i%len(qs)], 1232, dst); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	c := New(Config{MaxEntries: 10_000})
	qs := benchEntries(b, c, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, 4096)
		for i := 0; pb.Next(); i++ {
			if _, _, _, ok := c.Get(1, qs[i%len(qs)], 1232, dst); !ok {
				b.Fatal("miss")
			}
		}
	})
}

func BenchmarkGetMiss(b *testing.B) {
	c := New(Config{MaxEntries: 10_000})
	benchEntries(b, c, 1000)
	q := pack(b, query(b, "not-cached.example.", dns.TypeA, true, false))
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, _, ok := c.Get(1, q, 1232, dst); ok {
			b.Fatal("hit")
		}
	}
}

// BenchmarkPutMiss stores replies to new names into a full cache (each Put evicts one).
func BenchmarkPutMiss(b *testing.B) {
	const n = 4096
	qs, rs := make([][]byte, n), make([][]byte, n)
	for i := range n {
		q, r := realistic(b, i)
		qs[i], rs[i] = pack(b, q), pack(b, r)
	}
	c := New(Config{MaxEntries: n / 2})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if !c.Put(1, qs[i%n], rs[i%n], "10.0.0.1:53") {
			b.Fatal("refused")
		}
	}
}

// BenchmarkGetAtHit is BenchmarkGetHit with the clock read once per 64 queries, as a
// caller that passes its batch's time does.
func BenchmarkGetAtHit(b *testing.B) {
	c := New(Config{MaxEntries: 10_000})
	qs := benchEntries(b, c, 1000)
	dst := make([]byte, 0, 4096)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%64 == 0 {
			now = time.Now()
		}
		if _, _, _, ok := c.GetAt(1, qs[i%len(qs)], 1232, dst, now); !ok {
			b.Fatal("miss")
		}
	}
}
