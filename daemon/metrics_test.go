package daemon

import (
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"berth/dnsd"
	"berth/internal/promtext"
	"berth/store"
)

// TestMetricsHandler: /metrics is one document Prometheus reads and promlint passes, with
// the runtime and process metrics under client_golang's names and types (sane values), the
// state gauges (from the fixture: two bridge networks, one bridge sandbox, one address of
// App) and dnsd's families at the end.
func TestMetricsHandler(t *testing.T) {
	st := store.NewMemory()
	if err := st.Update(func(tx *store.Tx) error {
		if err := fixture(tx); err != nil {
			return err
		}
		return tx.PutAddress(&store.Address{NetworkID: appID, Addr: mustAddr("172.18.0.2"), Owner: strings.Repeat("e", 64)})
	}); err != nil {
		t.Fatal(err)
	}
	dns := dnsd.New(dnsd.Config{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	w := httptest.NewRecorder()
	newMetricsHandler(st, dns).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	text := w.Body.String()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}

	for name, typ := range map[string]dto.MetricType{
		"go_goroutines":                    dto.MetricType_GAUGE,
		"go_threads":                       dto.MetricType_GAUGE,
		"go_info":                          dto.MetricType_GAUGE,
		"go_memstats_alloc_bytes":          dto.MetricType_GAUGE,
		"go_memstats_alloc_bytes_total":    dto.MetricType_COUNTER,
		"go_memstats_frees_total":          dto.MetricType_COUNTER,
		"go_memstats_heap_alloc_bytes":     dto.MetricType_GAUGE,
		"go_memstats_heap_inuse_bytes":     dto.MetricType_GAUGE,
		"go_memstats_heap_objects":         dto.MetricType_GAUGE,
		"go_memstats_last_gc_time_seconds": dto.MetricType_GAUGE,
		"go_memstats_mallocs_total":        dto.MetricType_COUNTER,
		"go_memstats_next_gc_bytes":        dto.MetricType_GAUGE,
		"go_memstats_sys_bytes":            dto.MetricType_GAUGE,
		"process_cpu_seconds_total":        dto.MetricType_COUNTER,
		"process_max_fds":                  dto.MetricType_GAUGE,
		"process_open_fds":                 dto.MetricType_GAUGE,
		"process_resident_memory_bytes":    dto.MetricType_GAUGE,
		"process_start_time_seconds":       dto.MetricType_GAUGE,
		"process_virtual_memory_bytes":     dto.MetricType_GAUGE,
		"berth_sandboxes":                  dto.MetricType_GAUGE,
		"berth_networks":                   dto.MetricType_GAUGE,
		"berth_addresses_in_use":           dto.MetricType_GAUGE,
		"berth_dns_answers_total":          dto.MetricType_COUNTER,
		"berth_dns_duration_seconds":       dto.MetricType_HISTOGRAM,
		"berth_dns_forwards_in_flight":     dto.MetricType_GAUGE,
	} {
		if mf := mfs[name]; mf == nil || mf.GetType() != typ || len(mf.GetMetric()) == 0 {
			t.Errorf("%s: %v; want type %v", name, mf, typ)
		} else if mf.GetHelp() == "" {
			t.Errorf("%s: no HELP", name)
		}
	}
	if t.Failed() {
		t.Fatalf("/metrics:\n%s", text)
	}
	value := func(name string) float64 {
		m := mfs[name].GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	now := float64(time.Now().UnixNano()) / 1e9
	for _, c := range []struct {
		name   string
		lo, hi float64
	}{
		{"go_goroutines", 1, 1e6},
		{"go_threads", 1, 1e5},
		{"process_open_fds", 1, 1e6},
		{"process_max_fds", 1, math.Inf(1)},
		{"process_resident_memory_bytes", 1 << 20, 1 << 40},
		{"process_virtual_memory_bytes", 1 << 20, math.Inf(1)},
		{"process_cpu_seconds_total", 0, 1e6},
		// btime and the start ticks are truncated, so the sum is never later than the start.
		{"process_start_time_seconds", now - 86400, now},
		{"go_memstats_alloc_bytes", 1, 1 << 40},
		{"go_memstats_heap_alloc_bytes", 1, 1 << 40},
		{"go_memstats_heap_inuse_bytes", 1, 1 << 40},
		{"go_memstats_heap_objects", 1, 1e12},
		{"go_memstats_sys_bytes", 1 << 20, 1 << 40},
		{"go_memstats_next_gc_bytes", 1, 1 << 40},
		{"go_memstats_alloc_bytes_total", 1, math.Inf(1)},
		{"go_memstats_mallocs_total", 1, math.Inf(1)},
		{"go_memstats_frees_total", 0, math.Inf(1)},
		{"go_memstats_last_gc_time_seconds", 0, now},
	} {
		if v := value(c.name); !(v >= c.lo && v <= c.hi) {
			t.Errorf("%s = %v; want in [%v, %v]", c.name, v, c.lo, c.hi)
		}
	}
	if v := value("go_memstats_mallocs_total"); v < value("go_memstats_frees_total") {
		t.Errorf("go_memstats_mallocs_total %v < frees", v)
	}
	info := mfs["go_info"].GetMetric()
	if len(info) != 1 || len(info[0].GetLabel()) != 1 || info[0].GetLabel()[0].GetName() != "version" ||
		info[0].GetLabel()[0].GetValue() != runtime.Version() || info[0].GetGauge().GetValue() != 1 {
		t.Errorf("go_info: %v; want {version=%q} 1", info, runtime.Version())
	}
	if problems, err := promlint.New(strings.NewReader(text)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v\n%s", problems, err, text)
	}

	got := map[string]float64{}
	for _, name := range []string{"berth_sandboxes", "berth_networks", "berth_addresses_in_use"} {
		for _, m := range mfs[name].GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"berth_sandboxes{mode=bridge}":         1,
		"berth_sandboxes{mode=none}":           0,
		"berth_sandboxes{mode=host}":           0,
		"berth_sandboxes{mode=container}":      0,
		"berth_networks{driver=bridge}":        2,
		"berth_addresses_in_use{network=App}":  1,
		"berth_addresses_in_use{network=back}": 0,
	}
	if len(got) != len(want) {
		t.Errorf("state gauges: got %v; want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: got %v (%v); want %v", k, g, ok, v)
		}
	}
	if h := mfs["berth_sandboxes"].GetHelp(); h != "Sandboxes, by network mode." {
		t.Errorf("berth_sandboxes help %q", h)
	}

	var ours strings.Builder
	pw := promtext.NewWriter(&ours)
	writeStateMetrics(pw, st.Snapshot())
	dns.WriteMetrics(pw)
	if !strings.HasSuffix(text, ours.String()) {
		t.Errorf("/metrics does not end with the state and DNS families:\n%s", text)
	}
}

// TestAddressesInUseOnParent: macvlan and ipvlan networks have addresses too.
func TestAddressesInUseOnParent(t *testing.T) {
	st := store.NewMemory()
	err := st.Update(func(tx *store.Tx) error {
		for _, d := range []string{store.DriverMacvlan, store.DriverIpvlan} {
			if err := tx.PutNetwork(&store.Network{ID: strings.Repeat(d[:1], 64), Name: "lan-" + d, Driver: d,
				Subnets: []store.Subnet{{Subnet: netip.MustParsePrefix("192.168.50.0/24")}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	writeStateMetrics(promtext.NewWriter(&b), st.Snapshot())
	for _, want := range []string{`berth_addresses_in_use{network="lan-macvlan"} 0`, `berth_addresses_in_use{network="lan-ipvlan"} 0`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, b.String())
		}
	}
}
