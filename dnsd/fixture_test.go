package dnsd

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
	"berth/resolver"
	"berth/store"
)

// IDs of the fixture: sandboxes "client" and "web" on the user network "n1"; "web" has the
// alias "www" and hostname "webhost".
const (
	n1ID     = "1111111111111111111111111111111111111111111111111111111111111111"
	clientID = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"
	webID    = "abcdef012345abcdef012345abcdef012345abcdef012345abcdef012345abcd"
)

var (
	clientIP = netip.MustParseAddr("172.30.0.2")
	webIP    = netip.MustParseAddr("172.30.0.3")
)

// newFixture returns a memory store with the fixture. nsPath is the client's NetNSPath
// ("" for unit tests: upstreams are dialled in the current netns).
func newFixture(t testing.TB, nsPath string) *store.Store {
	t.Helper()
	st := store.NewMemory()
	err := st.Update(func(tx *store.Tx) error {
		nw := &store.Network{
			ID: n1ID, Name: "n1", Driver: store.DriverBridge, Bridge: "bth-n1",
			Subnets: []store.Subnet{{Subnet: netip.MustParsePrefix("172.30.0.0/24"), Gateway: netip.MustParseAddr("172.30.0.1")}},
		}
		if err := tx.PutNetwork(nw); err != nil {
			return err
		}
		for i, sb := range []struct {
			id, name, host string
			ip             netip.Addr
			aliases        []string
		}{
			{clientID, "client", "client", clientIP, nil},
			{webID, "web", "webhost", webIP, []string{"www"}},
		} {
			if err := tx.PutSandbox(&store.Sandbox{
				ID: sb.id, Name: sb.name, Hostname: sb.host, Mode: store.ModeBridge,
				NetNSPath: nsPath, State: store.StateReady, Seq: uint64(i + 1),
			}); err != nil {
				return err
			}
			names := append([]string{sb.name}, sb.aliases...)
			names = append(names, store.ShortID(sb.id), sb.host)
			if err := tx.PutEndpoint(&store.Endpoint{
				ID: strings.Repeat(string(rune('a'+i)), 64), NetworkID: n1ID, SandboxID: sb.id,
				IfName: "eth0", IPv4: sb.ip, Aliases: sb.aliases, DNSNames: names, Seq: 1,
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// newTestServer returns a Server over st whose sandboxes forward to ups (nil: none).
func newTestServer(t testing.TB, st *store.Store, cfg Config, ups ...*upstream) *Server {
	t.Helper()
	cfg.Store = st
	s := New(cfg)
	s.upstreams = func(*store.Snapshot, string) []resolver.Upstream {
		var list []resolver.Upstream
		for _, u := range ups {
			list = append(list, resolver.Upstream{Addr: u.addr, HostNS: true})
		}
		return list
	}
	t.Cleanup(s.Close)
	return s
}

// query runs one query through the client's handler and returns the reply as the client
// would read it.
func query(t testing.TB, s *Server, proto string, r *dns.Msg) *dns.Msg {
	t.Helper()
	h := s.newHandler(context.Background(), clientID, "")
	w := dnstest.NewWriter(proto)
	h.ServeDNS(w, r)
	if w.Msg == nil {
		t.Fatalf("no reply to %v", r.Question)
	}
	return w.Msg
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// upstream is a test nameserver on 127.0.0.x, UDP and TCP on one port. By default it is
// DaftDNS-like: A test.example is 10.11.12.13, everything else NXDOMAIN with an SOA.
type upstream struct {
	addr netip.AddrPort
	// reply builds the answer; nil answers nothing (a dead server).
	reply func(r *dns.Msg) *dns.Msg

	mu      sync.Mutex // guards following
	queries []seen
}

// seen is one query an upstream received.
type seen struct {
	name  string
	qtype uint16
	proto string
	id    uint16
}

// newUpstream starts an upstream on ip, a random port.
func newUpstream(t testing.TB, ip string) *upstream {
	t.Helper()
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return serveUpstream(t, pc, l)
		}
		pc.Close()
		if i == 10 {
			t.Fatal(err)
		}
	}
}

// serveUpstream runs an upstream on sockets the caller opened (perhaps in another netns).
func serveUpstream(t testing.TB, pc net.PacketConn, l net.Listener) *upstream {
	t.Helper()
	u := &upstream{reply: daft}
	u.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: u}, {Listener: l, Handler: u}} {
		var wg sync.WaitGroup
		wg.Add(1)
		srv.NotifyStartedFunc = wg.Done
		go srv.ActivateAndServe()
		wg.Wait()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	proto := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	u.mu.Lock()
	u.queries = append(u.queries, seen{r.Question[0].Name, r.Question[0].Qtype, proto, r.Id})
	reply := u.reply
	u.mu.Unlock()
	if reply == nil {
		return
	}
	if m := reply(r); m != nil {
		w.WriteMsg(m)
	}
}

func (u *upstream) seen() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.queries...)
}

func (u *upstream) setReply(f func(r *dns.Msg) *dns.Msg) {
	u.mu.Lock()
	u.reply = f
	u.mu.Unlock()
}

// daft answers like the reference's test upstream U.
func daft(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	if strings.EqualFold(q.Name, "test.example.") && q.Qtype == dns.TypeA {
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 600}, A: net.IPv4(10, 11, 12, 13)}}
		return m
	}
	m.Rcode = dns.RcodeNameError
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns.example.", Mbox: "root.example.", Serial: 1, Refresh: 1, Retry: 1, Expire: 1, Minttl: 60}}
	return m
}

// rcodeReply answers every query with rcode.
func rcodeReply(rcode int) func(r *dns.Msg) *dns.Msg {
	return func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		return m
	}
}

// fast answers pkt on the fast path if it can, returning the reply (valid until the next
// call) and true. false means: the general path or the relay.
func (h *handler) fast(pkt []byte, sc *scratch) ([]byte, bool) {
	reply, v, _ := h.classify(pkt, sc)
	return reply, v == answered
}

// accept is the general path's acceptMsg without the action.
func accept(pkt []byte, w dns.ResponseWriter) *dns.Msg {
	req, _ := acceptMsg(pkt, w)
	return req
}
