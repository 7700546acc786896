package dnsd

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"berth/dnsd/cache"
	"berth/internal/promtext"
)

// Metrics counts what the embedded DNS of every sandbox answers, for Prometheus. The query
// paths only add to atomic counters indexed by small enums (the UDP fast path stays free of
// allocations and locks); label values, sums and histograms are built in WriteMetrics.
type Metrics struct {
	queries   [numQtypes][numRcodes]atomic.Uint64
	answers   [numSources]atomic.Uint64
	latency   [numLatencies]histogram
	panics    atomic.Uint64
	tcpClosed [numTCPCloses]atomic.Uint64
	inflight  func() int   // forwards holding a slot now; read by WriteMetrics
	cache     *cache.Cache // the forward cache, or nil; its counters are its own
	mu        sync.Mutex   // guards following
	upstreams map[netip.AddrPort]*upstreamCounters
}

// source is where an answer came from (the label of berth_dns_answers_total).
type source uint8

const (
	srcLocal     source = iota // answered from the store
	srcForwarded               // relayed from an upstream
	srcCached                  // an upstream's earlier reply, from the forward cache
	srcRefused                 // REFUSED: the inflight limit
	srcServfail                // SERVFAIL: no upstream answered, or none exists, or a failure here
	srcMalformed               // FORMERR, NOTIMP or BADVERS for a query we could not take
	srcDropped                 // no reply at all: too short, or a response
	numSources
)

var sourceNames = [numSources]string{"local", "forwarded", "cached", "refused", "servfail", "malformed", "dropped"}

// The query types and rcodes with counters of their own; the rest count as "other".
var (
	qtypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypePTR, dns.TypeCNAME, dns.TypeMX, dns.TypeTXT, dns.TypeSRV, dns.TypeNS, dns.TypeSOA, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeANY}
	rcodes = [...]int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError, dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers}
)

const (
	numQtypes = len(qtypes) + 1
	numRcodes = len(rcodes) + 1
)

func qtypeIndex(t uint16) int {
	switch t { // the common ones without a scan
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	}
	for i, q := range qtypes {
		if q == t {
			return i
		}
	}
	return len(qtypes)
}

func rcodeIndex(rc int) int {
	if rc >= 0 && rc <= dns.RcodeRefused {
		return rc // rcodes[0:6] are 0..5
	}
	if rc == dns.RcodeBadVers {
		return len(rcodes) - 1
	}
	return len(rcodes)
}

// Latency labels: the query was for a name resolver owns, answered from the forward
// cache, or it went to the forwarder.
const (
	latencyLocal = iota
	latencyForwarded
	latencyCached
	numLatencies
)

// latencyBuckets are the histogram's upper bounds: local answers take microseconds,
// forwarded ones whatever the upstream takes, up to DefaultForwardDeadline.
var latencyBuckets = [...]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond,
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second,
}

// histogram is a fixed-bucket histogram of atomic counters; counts are per bucket (not
// cumulative) and the last one is +Inf.
type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Reasons an upstream attempt failed, other than a timeout.
const (
	upErrNetwork  = iota // socket, send or receive error (ICMP unreachable, connection refused)
	upErrServfail        // it answered SERVFAIL
	upErrRefused         // it answered REFUSED
	numUpErrs
)

var upErrNames = [numUpErrs]string{"network", "servfail", "refused"}

func upErrRcode(rc int) int {
	if rc == dns.RcodeRefused {
		return upErrRefused
	}
	return upErrServfail
}

type upstreamCounters struct {
	errors     [numUpErrs]atomic.Uint64
	timeouts   atomic.Uint64
	mismatched atomic.Uint64
}

// Why the server closed a client TCP connection other than its idle timeout (tcpconn.go).
const (
	tcpEvicted = iota // idle the longest when a new connection needed its slot
	tcpYielded        // finished a query while a new connection waited for a slot
	tcpNoSlot         // a new connection that found no slot within the wait
	numTCPCloses
)

var tcpCloseNames = [numTCPCloses]string{"evicted", "yielded", "no_slot"}

func newMetrics(inflight func() int, c *cache.Cache) *Metrics {
	return &Metrics{inflight: inflight, cache: c, upstreams: make(map[netip.AddrPort]*upstreamCounters)}
}

// answered counts one reply sent (or, for srcDropped, not sent).
func (m *Metrics) answered(qtype uint16, rcode int, src source, d time.Duration) {
	m.answers[src].Add(1)
	if src == srcDropped {
		return
	}
	m.queries[qtypeIndex(qtype)][rcodeIndex(rcode)].Add(1)
	if src == srcMalformed {
		return
	}
	l := latencyForwarded
	switch src {
	case srcLocal:
		l = latencyLocal
	case srcCached:
		l = latencyCached
	}
	m.latency[l].observe(d)
}

// dropped counts a datagram that got no reply.
func (m *Metrics) dropped() { m.answers[srcDropped].Add(1) }

// panicked counts a handler panic turned into SERVFAIL: it should stay at zero, and an
// alert on it finds a bug faster than the log does.
func (m *Metrics) panicked() { m.panics.Add(1) }

func (m *Metrics) upstream(addr netip.AddrPort) *upstreamCounters {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.upstreams[addr]
	if c == nil {
		c = new(upstreamCounters)
		m.upstreams[addr] = c
	}
	return c
}

func (m *Metrics) upstreamError(addr netip.AddrPort, reason int) {
	m.upstream(addr).errors[reason].Add(1)
}

func (m *Metrics) upstreamTimeout(addr netip.AddrPort) { m.upstream(addr).timeouts.Add(1) }

// upstreamMismatched counts a reply skipped because it does not answer the query sent: a
// late reply to an earlier attempt, or a forgery. Many of them point at a spoofer.
func (m *Metrics) upstreamMismatched(addr netip.AddrPort) { m.upstream(addr).mismatched.Add(1) }

// tcpClose counts a client TCP connection the server closed, by reason.
func (m *Metrics) tcpClose(reason int) { m.tcpClosed[reason].Add(1) }

// Names and help texts of the metric families, in the order WriteMetrics writes them.
const (
	nameAnswers = "berth_dns_answers_total"
	helpAnswers = "DNS queries by where the answer came from (local, forwarded, cached, refused, servfail, malformed, dropped)."

	nameCacheHits      = "berth_dns_cache_hits_total"
	helpCacheHits      = "Forwarded queries answered from the forward cache."
	nameCacheMisses    = "berth_dns_cache_misses_total"
	helpCacheMisses    = "Forwarded queries the forward cache had no answer for (none, expired, or too big for the client)."
	nameCacheEvictions = "berth_dns_cache_evictions_total"
	helpCacheEvictions = "Forward cache entries pushed out by its size bounds (--dns-cache-size, --dns-cache-memory) before they expired."
	nameCacheEntries   = "berth_dns_cache_entries"
	helpCacheEntries   = "Entries in the forward cache now."
	nameCacheBytes     = "berth_dns_cache_bytes"
	helpCacheBytes     = "Bytes the forward cache accounts for its entries now."

	nameLatency = "berth_dns_duration_seconds"
	helpLatency = "Time from reading a query to writing its reply, for names answered locally, from the forward cache, and forwarded."

	nameInflight = "berth_dns_forwards_in_flight"
	helpInflight = "Forwarded queries waiting for an upstream now."

	namePanics = "berth_dns_handler_panics_total"
	helpPanics = "Handler panics recovered and answered with SERVFAIL."

	nameQueries = "berth_dns_queries_total"
	helpQueries = "DNS replies sent by the embedded DNS servers, by query type and response code."

	nameTCPClosed = "berth_dns_tcp_closed_total"
	helpTCPClosed = "Client TCP connections the server closed for want of slots, by reason (evicted: idle the longest when a new one came; yielded: gave its slot to a waiting one after its answer; no_slot: a new one that found none in time)."

	nameUpErrors = "berth_dns_upstream_errors_total"
	helpUpErrors = "Failed upstream attempts other than timeouts, by upstream and reason (network, servfail, refused)."

	nameUpMismatched = "berth_dns_upstream_mismatched_total"
	helpUpMismatched = "Upstream replies skipped because they do not answer the query sent (wrong ID or question), by upstream."

	nameUpTimeouts = "berth_dns_upstream_timeouts_total"
	helpUpTimeouts = "Upstream attempts that got no reply in time, by upstream."
)

// WriteMetrics writes the metrics in the Prometheus text format, families in name order.
// Counters never seen are left out, except the answer sources, which are always there.
func (m *Metrics) WriteMetrics(w *promtext.Writer) {
	for i := range m.answers {
		w.Header(nameAnswers, helpAnswers, promtext.Counter)
		w.Sample(nameAnswers, float64(m.answers[i].Load()), "source", sourceNames[i])
	}

	if m.cache != nil {
		st := m.cache.Stats()
		for _, f := range []struct {
			name, help string
			typ        promtext.Type
			v          int64
		}{
			{nameCacheBytes, helpCacheBytes, promtext.Gauge, st.Bytes},
			{nameCacheEntries, helpCacheEntries, promtext.Gauge, st.Entries},
			{nameCacheEvictions, helpCacheEvictions, promtext.Counter, st.Evictions},
			{nameCacheHits, helpCacheHits, promtext.Counter, st.Hits},
			{nameCacheMisses, helpCacheMisses, promtext.Counter, st.Misses},
		} {
			w.Header(f.name, f.help, f.typ)
			w.Sample(f.name, float64(f.v))
		}
	}

	var bounds [len(latencyBuckets)]float64
	for i, le := range latencyBuckets {
		bounds[i] = le.Seconds()
	}
	for i, label := range [numLatencies]string{latencyLocal: "local", latencyForwarded: "forwarded", latencyCached: "cached"} {
		h := &m.latency[i]
		var counts [len(h.counts)]uint64
		for b := range h.counts {
			counts[b] = h.counts[b].Load()
		}
		w.Header(nameLatency, helpLatency, promtext.Histogram)
		w.Histogram(nameLatency, bounds[:], counts[:], time.Duration(h.sum.Load()).Seconds(), "source", label)
	}

	w.Header(nameInflight, helpInflight, promtext.Gauge)
	w.Sample(nameInflight, float64(m.inflight()))

	w.Header(namePanics, helpPanics, promtext.Counter)
	w.Sample(namePanics, float64(m.panics.Load()))

	for qi := range m.queries {
		qt := "other"
		if qi < len(qtypes) {
			qt = dns.TypeToString[qtypes[qi]]
		}
		for ri := range m.queries[qi] {
			rc := "other"
			if ri < len(rcodes) {
				rc = rcodeName(rcodes[ri])
			}
			if v := m.queries[qi][ri].Load(); v > 0 {
				w.Header(nameQueries, helpQueries, promtext.Counter)
				w.Sample(nameQueries, float64(v), "qtype", qt, "rcode", rc)
			}
		}
	}

	for i := range m.tcpClosed {
		w.Header(nameTCPClosed, helpTCPClosed, promtext.Counter)
		w.Sample(nameTCPClosed, float64(m.tcpClosed[i].Load()), "reason", tcpCloseNames[i])
	}

	type upstream struct {
		addr netip.AddrPort
		c    *upstreamCounters
	}
	m.mu.Lock()
	ups := make([]upstream, 0, len(m.upstreams))
	for a, c := range m.upstreams {
		ups = append(ups, upstream{a, c})
	}
	m.mu.Unlock()
	slices.SortFunc(ups, func(a, b upstream) int { return a.addr.Compare(b.addr) })
	for _, u := range ups {
		for r := range u.c.errors {
			if v := u.c.errors[r].Load(); v > 0 {
				w.Header(nameUpErrors, helpUpErrors, promtext.Counter)
				w.Sample(nameUpErrors, float64(v), "reason", upErrNames[r], "upstream", u.addr.String())
			}
		}
	}
	for _, u := range ups {
		if v := u.c.mismatched.Load(); v > 0 {
			w.Header(nameUpMismatched, helpUpMismatched, promtext.Counter)
			w.Sample(nameUpMismatched, float64(v), "upstream", u.addr.String())
		}
	}
	for _, u := range ups {
		w.Header(nameUpTimeouts, helpUpTimeouts, promtext.Counter)
		w.Sample(nameUpTimeouts, float64(u.c.timeouts.Load()), "upstream", u.addr.String())
	}
}
