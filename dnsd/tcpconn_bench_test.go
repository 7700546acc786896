package dnsd

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkTCP is local A queries over tcpHeld connections held open, one query
// outstanding on each: "berth" is a sandbox's TCP server (miekg's dns.Server behind the
// connection slots of tcpconn.go), "miekg" the same dns.Server and handler with no slots,
// which would keep no MaxTCPConns limit. It says what the slots cost per query.
func BenchmarkTCP(b *testing.B) {
	s := newTestServer(b, newFixture(b, ""), Config{})
	h := s.newHandler(context.Background(), clientID, "")
	b.Cleanup(h.close)
	servers := []struct {
		name string
		srv  func(l *net.TCPListener) *dns.Server
	}{
		{"berth", func(l *net.TCPListener) *dns.Server { return s.tcpServer(h, l, s.tcpSlots()) }},
		{"miekg", func(l *net.TCPListener) *dns.Server {
			return &dns.Server{Listener: l, Handler: h, ReadTimeout: s.cfg.TCPIdleTimeout,
				IdleTimeout: func() time.Duration { return s.cfg.TCPIdleTimeout }, MsgAcceptFunc: s.countRejects}
		}},
	}
	for _, sv := range servers {
		b.Run(sv.name, func(b *testing.B) {
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			srv := sv.srv(l)
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go func() { _ = srv.ActivateAndServe() }()
			<-started
			defer srv.Shutdown()
			benchTCPConns(b, l.Addr().String())
		})
	}
}

// tcpHeld is how many connections BenchmarkTCP holds: a few busy clients, well under
// MaxTCPConns, so no slot is ever given away.
const tcpHeld = 8

// benchTCPConns runs b.N queries for web. over tcpHeld connections to addr.
func benchTCPConns(b *testing.B, addr string) {
	q, err := question("web.", dns.TypeA).Pack()
	if err != nil {
		b.Fatal(err)
	}
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	msg = append(msg, q...)
	conns := make([]net.Conn, tcpHeld)
	for i := range conns {
		if conns[i], err = net.Dial("tcp", addr); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, tcpHeld)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := conns[i]
			defer func() { conns[i] = c }()
			var l [2]byte
			buf := make([]byte, 512)
			for left.Add(-1) >= 0 {
				_, err := c.Write(msg)
				if err == nil {
					_, err = io.ReadFull(c, l[:])
				}
				if err != nil {
					// miekg closes a connection after MaxTCPQueries (128) queries, as
					// after its idle timeout: a client dials again.
					c.Close()
					if c, err = net.Dial("tcp", addr); err == nil {
						if _, err = c.Write(msg); err == nil {
							_, err = io.ReadFull(c, l[:])
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
				n := int(binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, buf[:n]); err != nil {
					errs <- err
					return
				}
				if buf[3]&0xF != 0 || binary.BigEndian.Uint16(buf[6:]) != 1 {
					errs <- io.ErrUnexpectedEOF
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
