package dnsd

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"berth/resolver"
	"berth/store"
)

// handler serves the queries of one sandbox. It is bound to the sandbox ID when the
// servers are created: the socket a query arrives on says who asks, not its source address.
type handler struct {
	s      *Server
	ctx    context.Context // cancelled by Stop; bounds forwards
	id     string
	nsPath string        // the sandbox netns, for upstreams dialled from inside
	sem    chan struct{} // this sandbox's inflight slots, or nil (Explain of an unserved sandbox)
	ns     *nsSockets    // opens sockets in the served netns (set by start); or nil (nsutil.Do per socket)

	ups            atomic.Pointer[upsCache] // the upstreams of the last snapshot seen
	lastRefusedLog atomic.Int64             // unix nanos of the last "inflight limit" warning
}

func (s *Server) newHandler(ctx context.Context, id, nsPath string) *handler {
	return &handler{s: s, ctx: ctx, id: id, nsPath: nsPath, sem: make(chan struct{}, s.cfg.MaxInflight)}
}

// close ends the handler's netns socket worker, if any.
func (h *handler) close() {
	if h.ns != nil {
		h.ns.close()
	}
}

// ServeDNS implements dns.Handler. miekg's default MsgAcceptFunc has already rejected
// responses, bad section counts and unknown opcodes.
func (h *handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	proto := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	var qtype uint16
	if len(r.Question) > 0 {
		qtype = r.Question[0].Qtype
	}
	defer func() {
		if v := recover(); v != nil {
			h.s.cfg.Log.Error("dns handler panic", "sandbox", h.id, "panic", v, "stack", string(debug.Stack()))
			writeLocal(w, r, failure(r, dns.RcodeServerFailure), proto)
			h.s.metrics.answered(qtype, dns.RcodeServerFailure, srcServfail, time.Since(start))
			h.s.metrics.panicked()
		}
	}()

	a := h.s.answer(h.ctx, h, r, proto)
	if a.raw != nil {
		_, _ = w.Write(a.raw) // relayed verbatim, client ID already restored
	} else {
		writeLocal(w, r, a.msg, proto)
	}
	h.s.metrics.answered(qtype, a.rcode(), a.source(), time.Since(start))
	if a.refused {
		h.logRefused()
	}
	if log := h.s.cfg.Log; len(r.Question) == 1 && log.Enabled(h.ctx, slog.LevelDebug) {
		q := r.Question[0]
		log.LogAttrs(h.ctx, slog.LevelDebug, "query",
			slog.String("sandbox", h.id), slog.String("qname", q.Name),
			slog.String("qtype", dns.TypeToString[q.Qtype]), slog.String("proto", proto),
			slog.String("rcode", rcodeName(a.rcode())), slog.String("source", a.how()),
			slog.Duration("dur", time.Since(start)))
	}
}

// writeLocal truncates a locally built reply to what the client can take and writes it. A
// reply that does not pack (a PTR label over 63 bytes) becomes SERVFAIL, as in Docker.
func writeLocal(w dns.ResponseWriter, r, m *dns.Msg, proto string) {
	m.Truncate(bufsize(r, proto))
	buf, err := m.Pack()
	if err != nil {
		buf, err = failure(r, dns.RcodeServerFailure).Pack()
		if err != nil {
			return
		}
	}
	_, _ = w.Write(buf)
}

// bufsize is the largest reply the client takes: 512 over UDP without EDNS, the advertised
// size (at least 512) with EDNS, 64 KiB over TCP.
func bufsize(r *dns.Msg, proto string) int {
	if proto == "tcp" {
		return dns.MaxMsgSize
	}
	if opt := r.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}

// answer is what a query got and how.
type answer struct {
	msg       *dns.Msg // the local reply, or nil for a relayed one
	raw       []byte   // the upstream's reply to relay verbatim, or nil for a local reply
	res       resolver.Result
	upstream  string // where a forwarded reply came from
	err       error  // why forwarding failed
	refused   bool   // inflight limit hit
	malformed bool   // a query we do not take (opcode, question count, EDNS version)
	cached    bool   // raw came from the forward cache (upstream: who sent it then)
	ttl       uint32 // the cached entry's remaining lifetime, in seconds
}

// rcode is the reply's response code (the low four bits for a relayed reply).
func (a *answer) rcode() int {
	if a.raw != nil {
		return int(a.raw[3] & 0xF)
	}
	return a.msg.Rcode
}

// source is the metrics label of the answer.
func (a *answer) source() source {
	switch {
	case a.cached:
		return srcCached
	case a.raw != nil:
		return srcForwarded
	case a.refused:
		return srcRefused
	case a.malformed:
		return srcMalformed
	case a.err != nil:
		return srcServfail
	default:
		return srcLocal
	}
}

// how describes the answer's source for logs and `berth dns query`.
func (a *answer) how() string {
	switch {
	case a.refused:
		return "refused: too many forwarded queries in flight"
	case a.cached && a.upstream == "":
		return fmt.Sprintf("cache: servfail remembered, %ds left", a.ttl)
	case a.cached:
		return fmt.Sprintf("cache: upstream %s, %ds left", a.upstream, a.ttl)
	case a.upstream != "":
		return "upstream " + a.upstream
	case a.err != nil:
		return "servfail: " + a.err.Error()
	case a.res.Kind == resolver.Found:
		return fmt.Sprintf("local: network %s, %s", a.res.Network, a.res.Source)
	case a.res.Kind == resolver.NoData && a.res.Network == "":
		return "local no data: " + a.res.Source
	case a.res.Kind == resolver.NoData:
		return fmt.Sprintf("local no data: network %s, %s", a.res.Network, a.res.Source)
	default:
		return "local: " + rcodeName(a.msg.Rcode)
	}
}

// answer resolves one query for the sandbox of h: locally when the resolver owns the name,
// otherwise through the sandbox's upstreams.
func (s *Server) answer(ctx context.Context, h *handler, r *dns.Msg, proto string) answer {
	if r.Opcode != dns.OpcodeQuery {
		return answer{msg: failure(r, dns.RcodeNotImplemented), malformed: true}
	}
	if len(r.Question) != 1 {
		return answer{msg: failure(r, dns.RcodeFormatError), malformed: true}
	}
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		return answer{msg: failure(r, dns.RcodeBadVers), malformed: true}
	}
	q := r.Question[0]
	snap := s.cfg.Store.Snapshot()
	res := resolver.Result{Kind: resolver.NotOurs}
	if q.Qclass == dns.ClassINET {
		res = s.lookup(snap, h.id, q)
	}
	if res.Kind != resolver.NotOurs {
		return answer{msg: localReply(r, res), res: res}
	}

	ups := h.upstreams(snap)
	query, err := r.Pack()
	if err != nil {
		return answer{msg: failure(r, dns.RcodeServerFailure), res: res, err: fmt.Errorf("pack query: %w", err)}
	}
	limit := bufsize(r, proto)
	if a, ok := s.cacheGet(ups, query, limit); ok {
		a.res = res
		return a
	}
	release, ok := s.acquire(ctx, h.sem)
	if !ok {
		return answer{msg: failure(r, dns.RcodeRefused), res: res, refused: true}
	}
	defer release()
	raw, up, err := s.fwd.exchange(ctx, h, query, q.Qtype, proto, ups.ups, ups.nsPath)
	if err != nil {
		a := answer{msg: failure(r, dns.RcodeServerFailure), res: res, err: err}
		if ctx.Err() == nil && cacheableFailure(err) {
			if b, err := a.msg.Pack(); err == nil {
				s.cachePut(ups, query, b, "")
			}
		}
		return a
	}
	s.cachePut(ups, query, raw, up)
	return answer{raw: raw, res: res, upstream: up}
}

// lookup is resolver.Lookup with the ndots rule, whose input (the sandbox's and the
// host's resolv.conf options) is only parsed for the rare query it can change: an unknown
// single-label A or AAAA name.
func (s *Server) lookup(snap *store.Snapshot, id string, q dns.Question) resolver.Result {
	return resolver.NDots(resolver.Lookup(snap, id, q.Name, q.Qtype), q.Name, q.Qtype, func() bool {
		return resolver.NDotsSet(snap, id, s.hostView().hc)
	})
}

// localReply builds the answer to a name the resolver owns: RA set, AA clear, TTL 600, the
// owner name exactly as asked, addresses in a fresh random order.
func localReply(r *dns.Msg, res resolver.Result) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: localTTL}
	if res.Kind == resolver.Found {
		switch q.Qtype {
		case dns.TypePTR:
			if res.Target != "" {
				m.Answer = []dns.RR{&dns.PTR{Hdr: hdr, Ptr: res.Target}}
			}
		case dns.TypeA, dns.TypeAAAA:
			m.Answer = make([]dns.RR, 0, len(res.Addrs))
			for _, a := range res.Addrs {
				switch {
				case q.Qtype == dns.TypeA && a.Is4():
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
				case q.Qtype == dns.TypeAAAA && a.Is6() && !a.Is4In6():
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
				}
			}
			rand.Shuffle(len(m.Answer), func(i, j int) { m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i] })
		}
	}
	echoEDNS(r, m)
	return m
}

// failure is a locally generated error reply. RA is set on SERVFAIL, BADVERS and REFUSED,
// answers to queries the server would have recursed for (Docker clears it, a quirk that
// makes stub resolvers think recursion is unavailable), and clear on FORMERR and NOTIMP,
// as Docker, for packets it could not take at all.
func failure(r *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Rcode = rcode
	m.RecursionAvailable = failureRA(rcode)
	echoEDNS(r, m)
	return m
}

// failureRA reports whether a local failure with rcode says recursion is available.
func failureRA(rcode int) bool {
	return rcode != dns.RcodeFormatError && rcode != dns.RcodeNotImplemented
}

// rcodeName is dns.RcodeToString with BADVERS for 16, which that map names BADSIG (the
// TSIG meaning of the same number); berth never does TSIG, so 16 is always BADVERS.
func rcodeName(rc int) string {
	if rc == dns.RcodeBadVers {
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

// echoEDNS adds an OPT record to m when the query had one (RFC 6891 6.1.1; Docker omits
// it). The DO bit is copied (RFC 3225).
func echoEDNS(r, m *dns.Msg) {
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
	}
}
