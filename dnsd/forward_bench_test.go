package dnsd

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"berth/dnsd/cache"
	"berth/internal/nsutil"
	"berth/internal/testns"
	"berth/resolver"
	"berth/store"
)

// rawUpstream is a benchmark upstream on 127.0.0.1: one goroutine answering every query
// with one A record, no DNS library (as bench/rawudp), so the benchmark measures dnsd.
func rawUpstream(tb testing.TB) netip.AddrPort {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		out := make([]byte, 0, 4096)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			off := 12
			for off < n && buf[off] != 0 && buf[off] < 64 {
				off += int(buf[off]) + 1
			}
			off += 5
			if n < 12 || off > n {
				continue
			}
			out = append(out[:0], buf[:off]...)
			binary.BigEndian.PutUint16(out[2:], 0x8180|binary.BigEndian.Uint16(buf[2:])&0x0100)
			binary.BigEndian.PutUint16(out[6:], 1)
			binary.BigEndian.PutUint16(out[8:], 0)
			binary.BigEndian.PutUint16(out[10:], 0)
			out = append(out, 0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 2, 0x58, 0, 4, 10, 9, 9, 9)
			_, _ = c.WriteToUDPAddrPort(out, from)
		}
	}()
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// BenchmarkForward is a forwarded A query to an upstream on 127.0.0.1 (host netns, as a
// resolv.conf nameserver): "handler" through ServeDNS (the TCP and Explain path), "udp"
// end to end through a served UDP socket with 32 queries outstanding, as dnsperf does.
// ns/op includes the upstream's own work (a few µs of syscalls); "udp-10000" is "udp" over
// the 10,000 names of "udp-miss", its baseline. With the forward cache:
// "udp-cached" (32 names, all held: every query a hit), "udp-miss" (10,000 names through a
// cache of 16 entries: every query a miss, a Put and an eviction), and "udp-local" (a name
// the store owns, the fast path) for comparison in the same run: issue 18 asks for a hit
// at >= 0.9x a local answer, and a miss no slower than "udp-10000".
func BenchmarkForward(b *testing.B) {
	st := newFixture(b, "")
	up := rawUpstream(b)
	server := func(c *cache.Cache) *Server {
		s := New(Config{Store: st, Cache: c})
		s.upstreams = func(*store.Snapshot, string) []resolver.Upstream {
			return []resolver.Upstream{{Addr: up, HostNS: true}}
		}
		b.Cleanup(s.Close)
		return s
	}
	s := server(nil)

	b.Run("handler", func(b *testing.B) {
		h := s.newHandler(context.Background(), clientID, "")
		r := question("fwd.example.", dns.TypeA)
		w := &discard{}
		b.ReportAllocs()
		for b.Loop() {
			h.ServeDNS(w, r)
		}
	})
	fwdNames := func(n int) []string {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("fwd%d.example.", i)
		}
		return names
	}
	b.Run("udp", func(b *testing.B) { benchUDP(b, s, fwdNames(32)) })
	b.Run("udp-10000", func(b *testing.B) { benchUDP(b, s, fwdNames(10000)) })
	cached := server(cache.New(cache.Config{MaxEntries: 1000, MaxBytes: 1 << 20}))
	b.Run("udp-cached", func(b *testing.B) { benchUDP(b, cached, fwdNames(32)) })
	b.Run("udp-local", func(b *testing.B) { benchUDP(b, cached, []string{"web.", "www.", "client.", "webhost."}) })
	missing := server(cache.New(cache.Config{MaxEntries: 16, MaxBytes: 1 << 20}))
	b.Run("udp-miss", func(b *testing.B) { benchUDP(b, missing, fwdNames(10000)) })
}

// benchUDP asks the client sandbox's served UDP socket (a fresh one on 127.0.0.1) for
// names in turn, A, with 32 queries outstanding, b.N replies in all.
func benchUDP(b *testing.B, s *Server, names []string) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	h := s.newHandler(context.Background(), clientID, "")
	u := newUDPServer(h, srv)
	defer u.stop(time.Second)
	cl, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	const window = 32
	qs := make([][]byte, len(names))
	for i, name := range names {
		qs[i], _ = question(name, dns.TypeA).Pack()
	}
	buf := make([]byte, 4096)
	sent, got := 0, 0
	send := func() {
		q := qs[sent%len(qs)]
		binary.BigEndian.PutUint16(q, uint16(sent))
		if _, err := cl.Write(q); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	b.ReportAllocs()
	b.ResetTimer()
	for sent < min(window, b.N) {
		send()
	}
	for got < b.N {
		_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := cl.Read(buf)
		if err != nil {
			b.Fatalf("after %d of %d replies: %v", got, b.N, err)
		}
		if n < 12 || buf[3]&0xF != 0 {
			b.Fatalf("bad reply %x", buf[:n])
		}
		got++
		if sent < b.N {
			send()
		}
	}
}

// BenchmarkNetNSSocket is opening one upstream socket inside a sandbox's netns (for its
// --dns servers): a fresh thread and two setns per socket (nsutil.Do) against the
// sandbox's nsutil.Worker, a thread kept in the netns with a pool (nsSockets). Root only.
func BenchmarkNetNSSocket(b *testing.B) {
	testns.Require(b)
	path := testns.NewNetNS(b, "dnsd-bench-sock")
	if out, err := exec.Command("ip", "-n", "dnsd-bench-sock", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		b.Fatalf("lo up: %v: %s", err, out)
	}
	up := netip.MustParseAddrPort("127.0.0.1:53")
	b.Run("daemon netns, for reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fd, err := udpSocket(up)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
	b.Run("nsutil.Do", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fd, err := udpSocketIn(path, up)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
	b.Run("locked goroutine", func(b *testing.B) {
		h, err := nsutil.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		ns := newNSSockets(h, nsIdle)
		defer ns.close()
		b.ReportAllocs()
		for b.Loop() {
			fd, err := ns.open(up)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
}
