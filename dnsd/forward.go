package dnsd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"berth/internal/nsutil"
	"berth/resolver"
)

// forwardConfig is how the forwarder talks to upstreams.
type forwardConfig struct {
	Timeout  time.Duration // one upstream attempt, dial included
	Deadline time.Duration // all attempts of one query
	// Dial opens a connected socket to addr inside the netns at nsPath ("" is the daemon's
	// own). The socket may then be used from any goroutine.
	Dial func(ctx context.Context, nsPath, network, addr string) (net.Conn, error)
}

// forwarder relays queries for names the resolver does not own. Upstreams are tried in
// order; each attempt uses a fresh socket and a fresh random query ID, and only a reply
// with that ID and the same question, from that server, is accepted. Nothing is cached.
type forwarder struct {
	cfg forwardConfig
}

// errNoUpstreams means the sandbox has nowhere to forward to (none configured, or only
// host ones for an internal-only sandbox).
var errNoUpstreams = errors.New("no upstream nameservers")

// udpBufs are 64 KiB read buffers: an upstream that ignores EDNS may still send a large
// UDP reply (moby #44575), and it is relayed as received.
var udpBufs = sync.Pool{New: func() any { b := make([]byte, dns.MaxMsgSize); return &b }}

// exchange forwards r over proto ("udp" or "tcp", the client's transport) to ups in turn.
// It moves on after a dial error, a timeout, SERVFAIL or REFUSED and returns the first other
// reply, unpacked and as raw bytes carrying the client's ID, with the upstream that sent it.
func (f *forwarder) exchange(ctx context.Context, r *dns.Msg, proto string, ups []resolver.Upstream, nsPath string) (*dns.Msg, []byte, string, error) {
	if len(ups) == 0 {
		return nil, nil, "", errNoUpstreams
	}
	query, err := r.Pack()
	if err != nil {
		return nil, nil, "", fmt.Errorf("pack query: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Deadline)
	defer cancel()
	var errs []error
	for _, up := range ups {
		ns, where := nsPath, "sandbox netns"
		if up.HostNS {
			ns, where = "", "host netns"
		}
		name := up.Addr.String() + " (" + where + ")"
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("%s: not tried: %w", name, err))
			break
		}
		reply, raw, err := f.try(ctx, query, r.Question[0], proto, up.Addr.String(), ns)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		case reply.Rcode == dns.RcodeServerFailure || reply.Rcode == dns.RcodeRefused:
			errs = append(errs, fmt.Errorf("%s: %s", name, dns.RcodeToString[reply.Rcode]))
		default:
			reply.Id = r.Id
			binary.BigEndian.PutUint16(raw, r.Id)
			return reply, raw, name, nil
		}
	}
	return nil, nil, "", errors.Join(errs...)
}

// try runs one attempt against one upstream. query is modified (its ID).
func (f *forwarder) try(ctx context.Context, query []byte, q dns.Question, proto, addr, nsPath string) (*dns.Msg, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	conn, err := f.cfg.Dial(ctx, nsPath, proto, addr)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, nil, err
	}
	// Stop (the handler's context) ends the attempt at once rather than at the deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	id := uint16(rand.Uint32())
	binary.BigEndian.PutUint16(query, id)
	if proto == "tcp" {
		return exchangeTCP(conn, query, id, q)
	}
	return exchangeUDP(conn, query, id, q)
}

// exchangeUDP sends query on a connected UDP socket (the kernel drops datagrams from other
// addresses) and reads until a matching reply arrives; others are ignored.
func exchangeUDP(conn net.Conn, query []byte, id uint16, q dns.Question) (*dns.Msg, []byte, error) {
	if _, err := conn.Write(query); err != nil {
		return nil, nil, err
	}
	bp := udpBufs.Get().(*[]byte)
	defer udpBufs.Put(bp)
	buf := *bp
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, nil, err
		}
		if n < 12 || binary.BigEndian.Uint16(buf) != id {
			continue // a late reply to someone else, or noise
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			return nil, nil, fmt.Errorf("bad reply: %w", err)
		}
		if !matches(m, id, q) {
			continue
		}
		return m, append([]byte(nil), buf[:n]...), nil
	}
}

// exchangeTCP sends query over TCP (two-byte length prefix) and reads one reply, which
// must match: on a stream there is nothing else to wait for.
func exchangeTCP(conn net.Conn, query []byte, id uint16, q dns.Question) (*dns.Msg, []byte, error) {
	out := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(out, uint16(len(query)))
	copy(out[2:], query)
	if _, err := conn.Write(out); err != nil {
		return nil, nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, nil, err
	}
	raw := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, raw); err != nil {
		return nil, nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		return nil, nil, fmt.Errorf("bad reply: %w", err)
	}
	if !matches(m, id, q) {
		return nil, nil, errors.New("reply does not match the query")
	}
	return m, raw, nil
}

// matches reports whether m answers the question q sent with id. Error replies without a
// question section (FORMERR, NOTIMP from old servers) are accepted on the ID alone.
func matches(m *dns.Msg, id uint16, q dns.Question) bool {
	if !m.Response || m.Id != id {
		return false
	}
	if len(m.Question) == 0 {
		return m.Rcode != dns.RcodeSuccess
	}
	a := m.Question[0]
	return len(m.Question) == 1 && a.Qtype == q.Qtype && a.Qclass == q.Qclass && strings.EqualFold(a.Name, q.Name)
}

// dialIn dials addr from inside the netns at nsPath ("" for the current one). The socket is
// created on nsutil's locked thread and stays in that netns for its life.
func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext(ctx, network, addr)
	}
	var c net.Conn
	err := nsutil.Do(nsPath, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		if c != nil {
			c.Close() // made, but the thread could not switch back
		}
		return nil, err
	}
	return c, nil
}
