package dnsd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/miekg/dns"

	"berth/internal/nsutil"
	"berth/resolver"
	"berth/store"
)

// forwardConfig is how the forwarder talks to upstreams.
type forwardConfig struct {
	Timeout  time.Duration // one upstream attempt, dial included
	Deadline time.Duration // all attempts of one query
	// Dial opens a connected TCP socket to addr inside the netns at nsPath ("" is the
	// daemon's own). The socket may then be used from any goroutine.
	Dial func(ctx context.Context, nsPath, network, addr string) (net.Conn, error)
}

// forwarder relays queries for names the resolver does not own. Upstreams are tried in
// order; each attempt uses a fresh socket and a fresh random query ID, and only a reply
// with that ID and the same question, from that server, is accepted. It moves on after a
// dial error, a timeout, SERVFAIL or REFUSED. Its callers put the replies in the forward
// cache (cached.go). UDP goes through the relay (relay.go), TCP, which clients use for the
// rare truncated answer, through a connection of its own per attempt.
type forwarder struct {
	cfg     forwardConfig
	relay   *relay
	metrics *Metrics
}

// upsCache is where the sandbox forwards, for one store snapshot and one host view: the
// list only changes with those, and working it out costs a resolv.conf parse.
type upsCache struct {
	snap   *store.Snapshot
	host   *hostView
	ups    []resolver.Upstream // not modified
	nsPath string
	set    string   // the answer cache's partition name of ups (cacheSet); "" without a cache or upstreams
	part   uint32   // its partition
	names  []string // upstreamName of each of ups, for cache entries (with the cache only)
}

// upstreams returns where the sandbox forwards: its upstreams, its current netns path and
// the answer cache partition they share with other sandboxes. When the upstreams changed
// since the last call, the old partition is flushed: a sandbox whose upstreams change
// must not go on getting the old ones' answers (an upstream fixed, a resolv.conf edited),
// even should it go back to them.
func (h *handler) upstreams(snap *store.Snapshot) *upsCache {
	host := h.s.hostView()
	old := h.ups.Load()
	if old != nil && old.snap == snap && old.host == host {
		return old
	}
	nsPath := h.nsPath
	if sb, err := snap.Sandbox(h.id); err == nil {
		nsPath = sb.NetNSPath
	}
	c := &upsCache{snap: snap, host: host, ups: h.s.upstreams(snap, h.id), nsPath: nsPath}
	if cc := h.s.cfg.Cache; cc != nil && len(c.ups) > 0 {
		c.set = cacheSet(h.id, c.ups)
		c.part = cc.Partition(c.set)
		c.names = make([]string, len(c.ups))
		for i, up := range c.ups {
			c.names[i] = upstreamName(up)
		}
	}
	if old != nil && old.set != "" && old.set != c.set {
		h.s.cfg.Cache.Flush(old.part)
	}
	h.ups.Store(c)
	return c
}

// socket opens a connected UDP socket to up: in the daemon's netns for host upstreams,
// else in the sandbox's (nsPath).
func (h *handler) socket(up resolver.Upstream, nsPath string) (int, error) {
	switch {
	case up.HostNS || nsPath == "":
		return udpSocket(up.Addr)
	case h.ns != nil && h.nsPath == nsPath:
		return h.ns.open(up.Addr)
	default:
		return udpSocketIn(nsPath, up.Addr)
	}
}

// errNoUpstreams means the sandbox has nowhere to forward to (none configured, or only
// host ones for an internal-only sandbox).
var errNoUpstreams = errors.New("no upstream nameservers")

// exchange forwards query (packed, one question of type qtype) over proto ("udp" or
// "tcp", the client's transport) to ups in turn for the sandbox of h and returns the first
// reply that is final, as raw bytes carrying the client's ID, with the upstream that sent
// it.
func (f *forwarder) exchange(ctx context.Context, h *handler, query []byte, qtype uint16, proto string, ups []resolver.Upstream, nsPath string) ([]byte, string, error) {
	if len(ups) == 0 {
		return nil, "", errNoUpstreams
	}
	qend, ok := questionEnd(query)
	if !ok {
		return nil, "", errors.New("pack query: no question")
	}
	if proto == "udp" {
		e, err := f.relay.get(h, query, fastQuery{qend: qend, qtype: qtype}, ups, nsPath)
		if err != nil {
			return nil, "", err
		}
		res := f.relay.exchange(ctx, e)
		return res.raw, res.upstream, res.err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Deadline)
	defer cancel()
	var errs []error
	for _, up := range ups {
		ns := nsPath
		if up.HostNS {
			ns = ""
		}
		name := upstreamName(up)
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("%s: not tried: %w", name, err))
			break
		}
		raw, err := f.tryTCP(ctx, query, qend, up, ns)
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errTimeout) || isTimeout(err):
			f.metrics.upstreamTimeout(up.Addr)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		case err != nil:
			f.metrics.upstreamError(up.Addr, upErrNetwork)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		case raw[3]&0xF == dns.RcodeServerFailure || raw[3]&0xF == dns.RcodeRefused:
			rc := int(raw[3] & 0xF)
			f.metrics.upstreamError(up.Addr, upErrRcode(rc))
			errs = append(errs, fmt.Errorf("%s: %s", name, rcodeName(rc)))
		default:
			raw[0], raw[1] = query[0], query[1] // the client's ID
			return raw, name, nil
		}
	}
	return nil, "", errors.Join(errs...)
}

// upstreamName is how logs and `berth dns query` name an upstream.
func upstreamName(up resolver.Upstream) string {
	if up.HostNS {
		return up.Addr.String() + " (host netns)"
	}
	return up.Addr.String() + " (sandbox netns)"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tryTCP runs one attempt against one upstream over TCP. query, whose question ends at
// qend, is sent whole (its OPT record too: the header counts it, and a strict upstream
// answers FORMERR to a header that lies); it is copied, not modified.
func (f *forwarder) tryTCP(ctx context.Context, query []byte, qend int, up resolver.Upstream, nsPath string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	conn, err := f.cfg.Dial(ctx, nsPath, "tcp", up.Addr.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Stop (the handler's context) ends the attempt at once rather than at the deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	return exchangeTCP(conn, query, qend, func() { f.metrics.upstreamMismatched(up.Addr) })
}

// exchangeTCP sends query over TCP (two-byte length prefix) with a fresh random ID and
// returns the first reply that matches the query's ID and question (up to qend). Other
// messages on the stream are skipped until the connection's deadline, as the relay skips
// stray datagrams: failing at the first one would let whoever can put a message on the
// stream (a middlebox, a broken upstream sending a stale answer first) turn the query into
// a SERVFAIL at will. The source needs no check: the stream is the connected socket's, to
// the upstream's address and port. skipped is called for each message skipped.
func exchangeTCP(conn net.Conn, query []byte, qend int, skipped func()) ([]byte, error) {
	out := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(out, uint16(len(query)))
	copy(out[2:], query)
	id := uint16(rand.Uint32())
	binary.BigEndian.PutUint16(out[2:], id)
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	var raw []byte
	for {
		var l [2]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return nil, fmt.Errorf("read reply: %w", err)
		}
		n := int(binary.BigEndian.Uint16(l[:]))
		if cap(raw) < n {
			raw = make([]byte, n)
		}
		raw = raw[:n]
		if _, err := io.ReadFull(conn, raw); err != nil {
			return nil, fmt.Errorf("read reply: %w", err)
		}
		if replyMatches(raw, id, out[2:2+qend]) {
			return raw, nil
		}
		skipped()
	}
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
