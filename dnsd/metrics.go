package dnsd

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the embedded DNS of every sandbox answers, for Prometheus. The query
// paths only add to atomic counters indexed by small enums (the UDP fast path stays free of
// allocations and locks); label values, sums and histograms are built in Collect.
type Metrics struct {
	queries   [numQtypes][numRcodes]atomic.Uint64
	answers   [numSources]atomic.Uint64
	latency   [2]histogram // index: latencyLocal, latencyForwarded
	panics    atomic.Uint64
	inflight  func() int // forwards holding a slot now; read by Collect
	mu        sync.Mutex // guards following
	upstreams map[netip.AddrPort]*upstreamCounters
}

// source is where an answer came from (the label of berth_dns_answers_total).
type source uint8

const (
	srcLocal     source = iota // answered from the store
	srcForwarded               // relayed from an upstream
	srcRefused                 // REFUSED: the inflight limit
	srcServfail                // SERVFAIL: no upstream answered, or none exists, or a failure here
	srcMalformed               // FORMERR, NOTIMP or BADVERS for a query we could not take
	srcDropped                 // no reply at all: too short, or a response
	numSources
)

var sourceNames = [numSources]string{"local", "forwarded", "refused", "servfail", "malformed", "dropped"}

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

// Latency labels: the query was for a name resolver owns, or it went to the forwarder.
const (
	latencyLocal = iota
	latencyForwarded
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
	errors   [numUpErrs]atomic.Uint64
	timeouts atomic.Uint64
}

func newMetrics(inflight func() int) *Metrics {
	return &Metrics{inflight: inflight, upstreams: make(map[netip.AddrPort]*upstreamCounters)}
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
	l := latencyLocal
	if src != srcLocal {
		l = latencyForwarded
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

var (
	descQueries = prometheus.NewDesc("berth_dns_queries_total",
		"DNS replies sent by the embedded DNS servers, by query type and response code.", []string{"qtype", "rcode"}, nil)
	descAnswers = prometheus.NewDesc("berth_dns_answers_total",
		"DNS queries by where the answer came from (local, forwarded, refused, servfail, malformed, dropped).", []string{"source"}, nil)
	descLatency = prometheus.NewDesc("berth_dns_duration_seconds",
		"Time from reading a query to writing its reply, for names answered locally and names forwarded.", []string{"source"}, nil)
	descUpErrors = prometheus.NewDesc("berth_dns_upstream_errors_total",
		"Failed upstream attempts other than timeouts, by upstream and reason (network, servfail, refused).", []string{"upstream", "reason"}, nil)
	descUpTimeouts = prometheus.NewDesc("berth_dns_upstream_timeouts_total",
		"Upstream attempts that got no reply in time, by upstream.", []string{"upstream"}, nil)
	descPanics = prometheus.NewDesc("berth_dns_handler_panics_total",
		"Handler panics recovered and answered with SERVFAIL.", nil, nil)
	descInflight = prometheus.NewDesc("berth_dns_forwards_in_flight",
		"Forwarded queries waiting for an upstream now.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueries, descAnswers, descLatency, descUpErrors, descUpTimeouts, descPanics, descInflight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Counters never seen are left out, except the
// answer sources, which are always there.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for qi := range m.queries {
		qt := "other"
		if qi < len(qtypes) {
			qt = dns.TypeToString[qtypes[qi]]
		}
		for ri := range m.queries[qi] {
			rc := "other"
			if ri < len(rcodes) {
				rc = dns.RcodeToString[rcodes[ri]]
			}
			if v := m.queries[qi][ri].Load(); v > 0 {
				ch <- prometheus.MustNewConstMetric(descQueries, prometheus.CounterValue, float64(v), qt, rc)
			}
		}
	}
	for i := range m.answers {
		ch <- prometheus.MustNewConstMetric(descAnswers, prometheus.CounterValue, float64(m.answers[i].Load()), sourceNames[i])
	}
	for i, label := range []string{"local", "forwarded"} {
		h := &m.latency[i]
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		for b, le := range latencyBuckets {
			cum += h.counts[b].Load()
			buckets[le.Seconds()] = cum
		}
		cum += h.counts[len(latencyBuckets)].Load()
		ch <- prometheus.MustNewConstHistogram(descLatency, cum, time.Duration(h.sum.Load()).Seconds(), buckets, label)
	}
	m.mu.Lock()
	ups := make(map[netip.AddrPort]*upstreamCounters, len(m.upstreams))
	for a, c := range m.upstreams {
		ups[a] = c
	}
	m.mu.Unlock()
	for a, c := range ups {
		for r := range c.errors {
			if v := c.errors[r].Load(); v > 0 {
				ch <- prometheus.MustNewConstMetric(descUpErrors, prometheus.CounterValue, float64(v), a.String(), upErrNames[r])
			}
		}
		ch <- prometheus.MustNewConstMetric(descUpTimeouts, prometheus.CounterValue, float64(c.timeouts.Load()), a.String())
	}
	ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(m.panics.Load()))
	ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(m.inflight()))
}
