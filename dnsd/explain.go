package dnsd

import (
	"context"
	"fmt"

	"github.com/miekg/dns"

	"berth/store"
)

// Explanation says how Explain's answer came about.
type Explanation struct {
	How    string // which network and record, which upstream, or the cache
	Cached bool   // the reply is an upstream's earlier one, from the forward cache
	TTL    uint32 // then: seconds the cache keeps it still
}

// Explain answers one question as sandbox sandboxID would get it from 127.0.0.11, and says
// how (which network and record, which upstream, or the forward cache), for `berth dns
// query`. Local answers open no sockets; other names are read from the cache or forwarded
// exactly as for the sandbox (its upstreams, its netns, its inflight limit when it is
// served), and a forwarded reply goes into the cache as the sandbox's would. The query is
// sent as dig sends it: RD set, EDNS0 with a 1232-byte buffer, over UDP. The error is
// store.ErrNotFound (wrapped) for an unknown sandbox; a failed forward is a SERVFAIL reply,
// not an error.
func (s *Server) Explain(ctx context.Context, sandboxID, name string, qtype uint16) (*dns.Msg, Explanation, error) {
	sb, err := s.cfg.Store.Snapshot().Sandbox(sandboxID)
	if err != nil {
		return nil, Explanation{}, fmt.Errorf("dns query in sandbox %q: %w", sandboxID, err)
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, Explanation{}, fmt.Errorf("dns query %q: invalid domain name", name)
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(ednsSize, false)

	h := s.explainHandler(ctx, sb)
	a := s.answer(ctx, h, q, "udp")
	ex := Explanation{How: a.how(), Cached: a.cached, TTL: a.ttl}
	if a.raw == nil {
		a.msg.Truncate(bufsize(q, "udp"))
		return a.msg, ex, nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(a.raw); err != nil {
		return nil, Explanation{}, fmt.Errorf("dns query %q: reply from %s: %w", name, a.upstream, err)
	}
	return m, ex, nil
}

// explainHandler returns the served handler of sb (to share its inflight limit) or a
// detached one.
func (s *Server) explainHandler(ctx context.Context, sb *store.Sandbox) *handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.sbs[sb.ID]; e != nil && e.phase == phaseServing {
		return e.h
	}
	return &handler{s: s, ctx: ctx, id: sb.ID, nsPath: sb.NetNSPath} // sem nil: Explain's own queries are not limited
}
