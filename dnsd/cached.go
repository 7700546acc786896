package dnsd

import (
	"context"
	"errors"
	"strings"

	"github.com/miekg/dns"

	"berth/resolver"
)

// The forward answer cache (package dnsd/cache) seen from dnsd: which partition a
// sandbox reads, and where replies go in. It is the daemon's (Config.Cache), shared by
// every sandbox with the same upstreams: a hit is answered on the UDP reader's fast path
// like a local name, with no inflight slot and no upstream.

// cacheSet names the partition of a sandbox that forwards to ups. Upstreams reached from
// the daemon's netns are the same servers for every sandbox, so sandboxes with the same
// list share answers; one reached inside the sandbox's netns may be any server there (its
// own resolver, a sidecar), so such a list is the sandbox's alone.
func cacheSet(sandboxID string, ups []resolver.Upstream) string {
	var b strings.Builder
	for _, up := range ups {
		if !up.HostNS {
			b.WriteString("sandbox ")
			b.WriteString(sandboxID)
			b.WriteByte(' ')
			break
		}
	}
	for i, up := range ups {
		if i > 0 {
			b.WriteByte(',')
		}
		if up.HostNS {
			b.WriteString("host:")
		}
		b.WriteString(up.Addr.String())
	}
	return b.String()
}

// fromCache answers the datagram pkt (read by parseQuery as q) from the cache of the
// sandbox's upstreams ups into dst, for the UDP reader.
func (h *handler) fromCache(ups *upsCache, pkt []byte, q fastQuery, dst []byte) ([]byte, bool) {
	c := h.s.cfg.Cache
	if c == nil || ups.set == "" {
		return nil, false
	}
	limit := dns.MinMsgSize
	if q.edns {
		limit = max(int(q.udpSize), dns.MinMsgSize)
	}
	reply, _, _, ok := c.Get(ups.part, pkt, limit, dst)
	return reply, ok
}

// cacheGet answers a packed query from the cache, for the general path, TCP and Explain.
func (s *Server) cacheGet(ups *upsCache, query []byte, limit int) (a answer, ok bool) {
	if s.cfg.Cache == nil || ups.set == "" {
		return a, false
	}
	raw, ttl, up, ok := s.cfg.Cache.Get(ups.part, query, limit, nil)
	return answer{raw: raw, upstream: up, cached: true, ttl: ttl}, ok
}

// cachePut offers an upstream's reply to query (both with the client's ID) to the cache.
func (s *Server) cachePut(ups *upsCache, query, reply []byte, upstream string) {
	if s.cfg.Cache != nil && ups.set != "" {
		s.cfg.Cache.Put(ups.part, query, reply, upstream)
	}
}

// cacheableFailure reports whether a forward that failed with err may be remembered for
// the cache's SERVFAIL time: when the upstreams failed it, not when berth stopped it (the
// sandbox's server stopping, the relay restarting or closed) or never asked one.
func cacheableFailure(err error) bool {
	return !errors.Is(err, errNoUpstreams) && !errors.Is(err, errRelayDown) && !errors.Is(err, ErrClosed) &&
		!errors.Is(err, context.Canceled)
}
