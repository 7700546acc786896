package dnsd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"berth/internal/dnstest"
	"berth/internal/promtext"
)

// TestMetrics: queries through a served UDP socket (fast path, relay, general path) and
// the handler (as TCP) show up in the collected values.
func TestMetrics(t *testing.T) {
	st := newFixture(t, "")
	good := newUpstream(t, "127.0.0.1")
	dead := newUpstream(t, "127.0.0.1")
	dead.setReply(nil)
	refused := newUpstream(t, "127.0.0.1")
	refused.setReply(rcodeReply(dns.RcodeRefused))
	s := newTestServer(t, st, Config{ForwardTimeout: 100 * time.Millisecond}, dead, refused, good)

	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h := s.newHandler(context.Background(), clientID, "")
	u := newUDPServer(h, srv)
	defer u.stop(time.Second)
	cl, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ask := func(r *dns.Msg) *dns.Msg {
		t.Helper()
		b, _ := r.Pack()
		if _, err := cl.Write(b); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		_ = cl.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := cl.Read(buf)
		if err != nil {
			t.Fatalf("%v: %v", r.Question, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		return m
	}

	for range 3 {
		ask(question("web.", dns.TypeA)) // fast path
	}
	ask(question("web.", dns.TypeAAAA))                                         // fast path, no data
	if got := ask(question("test.example.", dns.TypeA)); len(got.Answer) != 1 { // relay: dead, refused, good
		t.Fatalf("forwarded: got %v", got)
	}
	ask(question("nosuch.example.", dns.TypeMX)) // relay: NXDOMAIN relayed
	notify := question("web.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	ask(notify)                                          // general path: NOTIMP
	if _, err := cl.Write([]byte{1, 2, 3}); err != nil { // dropped
		t.Fatal(err)
	}
	w := dnstest.NewWriter("tcp") // the handler, as TCP: local
	h.ServeDNS(w, question("www.", dns.TypeA))
	ask(question("web.", dns.TypeA)) // after the short datagram, so it was read

	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`berth_dns_queries_total{qtype="A",rcode="NOERROR"}`, 6}, // 4 local over UDP, 1 over TCP, 1 forwarded
		{`berth_dns_queries_total{qtype="AAAA",rcode="NOERROR"}`, 1},
		{`berth_dns_queries_total{qtype="MX",rcode="NXDOMAIN"}`, 1},
		{`berth_dns_queries_total{qtype="SOA",rcode="NOTIMP"}`, 1},
		{`berth_dns_answers_total{source="local"}`, 6},
		{`berth_dns_answers_total{source="forwarded"}`, 2},
		{`berth_dns_answers_total{source="malformed"}`, 1},
		{`berth_dns_answers_total{source="dropped"}`, 1},
		{`berth_dns_answers_total{source="servfail"}`, 0},
		{`berth_dns_answers_total{source="refused"}`, 0},
		{`berth_dns_upstream_timeouts_total{upstream="` + dead.addr.String() + `"}`, 2},
		{`berth_dns_upstream_errors_total{reason="refused",upstream="` + refused.addr.String() + `"}`, 2},
		{`berth_dns_upstream_timeouts_total{upstream="` + good.addr.String() + `"}`, 0},
		{`berth_dns_forwards_in_flight`, 0},
		{`berth_dns_duration_seconds_count{source="local"}`, 6},
		{`berth_dns_duration_seconds_count{source="forwarded"}`, 2},
		{`berth_dns_duration_seconds_bucket{source="forwarded",le="+Inf"}`, 2},
	} {
		if got := settled(t, s, tc.series, tc.want); got != tc.want {
			t.Errorf("%s: got %v; want %v", tc.series, got, tc.want)
		}
	}
	// The first forward waited out two 100 ms timeouts.
	if sum := value(t, s, `berth_dns_duration_seconds_sum{source="forwarded"}`); sum < 0.2 {
		t.Errorf("forwarded latency sum %v s; want at least 0.2", sum)
	}
	text := metricsText(t, s)
	if problems, err := promlint.New(strings.NewReader(text)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v\n%s", problems, err, text)
	}
	// Every family has its help and type, and the histograms all their buckets.
	mfs := parseMetrics(t, s)
	for name, typ := range map[string]dto.MetricType{
		"berth_dns_queries_total":           dto.MetricType_COUNTER,
		"berth_dns_answers_total":           dto.MetricType_COUNTER,
		"berth_dns_duration_seconds":        dto.MetricType_HISTOGRAM,
		"berth_dns_upstream_errors_total":   dto.MetricType_COUNTER,
		"berth_dns_upstream_timeouts_total": dto.MetricType_COUNTER,
		"berth_dns_handler_panics_total":    dto.MetricType_COUNTER,
		"berth_dns_forwards_in_flight":      dto.MetricType_GAUGE,
	} {
		if mf := mfs[name]; mf == nil || mf.GetType() != typ || mf.GetHelp() == "" {
			t.Errorf("%s: %v; want type %v with help", name, mf, typ)
		}
	}
	for _, m := range mfs["berth_dns_duration_seconds"].GetMetric() {
		if n := len(m.GetHistogram().GetBucket()); n != len(latencyBuckets)+1 {
			t.Errorf("histogram %v: %d buckets; want %d", m.GetLabel(), n, len(latencyBuckets)+1)
		}
	}
}

// TestMetricsServfail: with no upstream answering, the relay's SERVFAIL is the one
// failure() builds, and it is counted as servfail.
func TestMetricsServfail(t *testing.T) {
	closed := &upstream{addr: netip.MustParseAddrPort("127.0.0.1:1")}
	s := newTestServer(t, newFixture(t, ""), Config{}, closed)
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := newUDPServer(s.newHandler(context.Background(), clientID, ""), srv)
	defer u.stop(time.Second)
	cl, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := question("Test.Example.", dns.TypeA)
	r.SetEdns0(1400, true)
	r.CheckingDisabled = true
	b, _ := r.Pack()
	cl.Write(b)
	buf := make([]byte, 4096)
	_ = cl.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := cl.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := new(dns.Msg)
	if err := got.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if want := failure(r, dns.RcodeServerFailure); got.String() != want.String() {
		t.Errorf("got\n%v\nwant\n%v", got, want)
	}
	if v := settled(t, s, `berth_dns_answers_total{source="servfail"}`, 1); v != 1 {
		t.Errorf("servfail answers: got %v; want 1", v)
	}
	if v := value(t, s, `berth_dns_upstream_errors_total{reason="network",upstream="127.0.0.1:1"}`); v != 1 {
		t.Errorf("network errors: got %v; want 1", v)
	}
}

// TestFastMetricsNoAllocs: the fast path with its metrics allocates nothing.
func TestFastMetricsNoAllocs(t *testing.T) {
	s := newTestServer(t, newFixture(t, ""), Config{})
	h := s.newHandler(context.Background(), clientID, "")
	var sc scratch
	pkt, _ := question("web.", dns.TypeA).Pack()
	got := testing.AllocsPerRun(100, func() {
		start := time.Now()
		_, v, q := h.classify(pkt, &sc)
		if v != answered {
			t.Fatal("not answered")
		}
		s.metrics.answered(q.qtype, 0, srcLocal, time.Since(start))
	})
	if got != 0 {
		t.Errorf("%v allocations; want 0", got)
	}
}

// metricsText is what s.WriteMetrics writes.
func metricsText(t *testing.T, s *Server) string {
	t.Helper()
	var b strings.Builder
	w := promtext.NewWriter(&b)
	s.WriteMetrics(w)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// parseMetrics reads s's metrics back with Prometheus' own text parser.
func parseMetrics(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	text := metricsText(t, s)
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return mfs
}

// value is the sample of s's metrics written as series in the text format (labels in name
// order, as Prometheus sorts them; a histogram's _count, _sum and _bucket series), or 0
// when there is none. The text is read back with Prometheus' parser, so a series this
// finds is one Prometheus reads.
// settled returns the value of series once it is want, or after a second what it is then.
// Answers are counted once they are sent, so a client can hold an answer a moment before
// it shows.
func settled(t *testing.T, s *Server, series string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		v := value(t, s, series)
		if v == want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(time.Millisecond)
	}
}

func value(t *testing.T, s *Server, series string) float64 {
	t.Helper()
	for _, mf := range parseMetrics(t, s) {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			name := func(suffix string, extra ...string) string {
				n := mf.GetName() + suffix
				if l := append(append([]string(nil), labels...), extra...); len(l) > 0 {
					n += "{" + strings.Join(l, ",") + "}"
				}
				return n
			}
			samples := map[string]float64{
				name(""): m.GetCounter().GetValue() + m.GetGauge().GetValue(),
			}
			if h := m.GetHistogram(); h != nil {
				samples[name("_count")] = float64(h.GetSampleCount())
				samples[name("_sum")] = h.GetSampleSum()
				samples[name("_bucket", `le="+Inf"`)] = float64(h.GetSampleCount())
				for _, b := range h.GetBucket() {
					samples[name("_bucket", fmt.Sprintf("le=%q", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))] = float64(b.GetCumulativeCount())
				}
			}
			if v, ok := samples[series]; ok {
				return v
			}
		}
	}
	return 0
}
