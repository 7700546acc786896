package promtext

import (
	"errors"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestAppendFloat(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1, "-1"},
		{42, "42"},
		{1e6, "1000000"},
		{123456789, "123456789"},
		{1 << 53, "9007199254740992"},
		{1 << 54, "1.8014398509481984e+16"},
		{-3e15, "-3000000000000000"},
		{0.5, "0.5"},
		{2.5e-05, "2.5e-05"},
		{1e-05, "1e-05"},
		{0.0001, "0.0001"},
		{1.5e300, "1.5e+300"},
		{math.Inf(1), "+Inf"},
		{math.Inf(-1), "-Inf"},
		{math.NaN(), "NaN"},
	} {
		if got := string(AppendFloat(nil, tc.f)); got != tc.want {
			t.Errorf("AppendFloat(%v) = %q; want %q", tc.f, got, tc.want)
		}
	}
}

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w *Writer)
		want  string
	}{
		{
			name: "counter without labels",
			write: func(w *Writer) {
				w.Header("x_total", "Things.", Counter)
				w.Sample("x_total", 3)
			},
			want: "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n",
		},
		{
			name: "one header per family",
			write: func(w *Writer) {
				for _, m := range []string{"a", "b"} {
					w.Header("g", "A gauge.", Gauge)
					w.Sample("g", 0.25, "mode", m)
				}
				w.Header("h", "", Untyped)
				w.Sample("h", -2, "x", "1", "y", "2")
			},
			want: "# HELP g A gauge.\n# TYPE g gauge\ng{mode=\"a\"} 0.25\ng{mode=\"b\"} 0.25\n" +
				"# HELP h \n# TYPE h untyped\nh{x=\"1\",y=\"2\"} -2\n",
		},
		{
			name: "escapes",
			write: func(w *Writer) {
				w.Header("e", "Back\\slash, \"quotes\" and\nnewline.", Gauge)
				w.Sample("e", 1, "v", "a\\b\"c\nd")
				w.Sample("e", 2, "v")
			},
			want: "# HELP e Back\\\\slash, \"quotes\" and\\nnewline.\n# TYPE e gauge\n" +
				"e{v=\"a\\\\b\\\"c\\nd\"} 1\ne{v=\"\"} 2\n",
		},
		{
			name: "special values",
			write: func(w *Writer) {
				w.Header("s", "S.", Gauge)
				w.Sample("s", math.Inf(1), "k", "p")
				w.Sample("s", math.Inf(-1), "k", "n")
				w.Sample("s", math.NaN(), "k", "nan")
			},
			want: "# HELP s S.\n# TYPE s gauge\ns{k=\"p\"} +Inf\ns{k=\"n\"} -Inf\ns{k=\"nan\"} NaN\n",
		},
		{
			name: "histogram",
			write: func(w *Writer) {
				w.Header("d_seconds", "Durations.", Histogram)
				w.Histogram("d_seconds", []float64{0.001, 0.5, 1}, []uint64{2, 0, 1, 4}, 7.25, "source", "local")
				w.Histogram("d_seconds", []float64{0.001, 0.5, 1}, []uint64{0, 0, 0, 0}, 0, "source", "forwarded")
			},
			want: `# HELP d_seconds Durations.
# TYPE d_seconds histogram
d_seconds_bucket{source="local",le="0.001"} 2
d_seconds_bucket{source="local",le="0.5"} 2
d_seconds_bucket{source="local",le="1"} 3
d_seconds_bucket{source="local",le="+Inf"} 7
d_seconds_sum{source="local"} 7.25
d_seconds_count{source="local"} 7
d_seconds_bucket{source="forwarded",le="0.001"} 0
d_seconds_bucket{source="forwarded",le="0.5"} 0
d_seconds_bucket{source="forwarded",le="1"} 0
d_seconds_bucket{source="forwarded",le="+Inf"} 0
d_seconds_sum{source="forwarded"} 0
d_seconds_count{source="forwarded"} 0
`,
		},
		{
			name: "histogram without labels or overflow bucket",
			write: func(w *Writer) {
				w.Header("h", "H.", Histogram)
				w.Histogram("h", []float64{1, 2}, []uint64{1, 1}, 2.5)
			},
			want: "# HELP h H.\n# TYPE h histogram\n" +
				"h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_sum 2.5\nh_count 2\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			w := NewWriter(&b)
			tc.write(w)
			if err := w.Err(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestParse: Prometheus' own parser reads back what the Writer wrote, with the same help
// texts, label values and numbers.
func TestParse(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	w.Header("c_total", "Help with \\ and\nnewline and \"quotes\".", Counter)
	w.Sample("c_total", 12345678, "path", `C:\dir "x"`+"\nnext", "code", "200")
	w.Sample("c_total", 1<<53, "path", "", "code", "500")
	w.Header("g", "A gauge.", Gauge)
	w.Sample("g", 0.1)
	w.Header("inf", "Infinities.", Gauge)
	w.Sample("inf", math.Inf(1), "s", "+")
	w.Sample("inf", math.Inf(-1), "s", "-")
	w.Sample("inf", math.NaN(), "s", "nan")
	w.Header("d_seconds", "Durations.", Histogram)
	w.Histogram("d_seconds", []float64{1e-05, 2.5e-05, 0.5, 5}, []uint64{1, 2, 3, 4, 5}, 31.5, "source", "local")
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}

	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	labels := func(m *dto.Metric) map[string]string {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		return l
	}

	c := mfs["c_total"]
	if c.GetType() != dto.MetricType_COUNTER || c.GetHelp() != "Help with \\ and\nnewline and \"quotes\"." || len(c.GetMetric()) != 2 {
		t.Fatalf("c_total: %v", c)
	}
	if m := c.GetMetric()[0]; m.GetCounter().GetValue() != 12345678 || labels(m)["path"] != `C:\dir "x"`+"\nnext" || labels(m)["code"] != "200" {
		t.Errorf("c_total[0]: %v", m)
	}
	if m := c.GetMetric()[1]; m.GetCounter().GetValue() != 1<<53 || labels(m)["code"] != "500" {
		t.Errorf("c_total[1]: %v", m)
	}
	if g := mfs["g"]; g.GetType() != dto.MetricType_GAUGE || g.GetMetric()[0].GetGauge().GetValue() != 0.1 {
		t.Errorf("g: %v", g)
	}
	for _, m := range mfs["inf"].GetMetric() {
		v := m.GetGauge().GetValue()
		if s := labels(m)["s"]; s == "+" && !math.IsInf(v, 1) || s == "-" && !math.IsInf(v, -1) || s == "nan" && !math.IsNaN(v) {
			t.Errorf("inf{s=%q}: %v", s, v)
		}
	}
	d := mfs["d_seconds"]
	if d.GetType() != dto.MetricType_HISTOGRAM || len(d.GetMetric()) != 1 {
		t.Fatalf("d_seconds: %v", d)
	}
	h := d.GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 15 || h.GetSampleSum() != 31.5 || labels(d.GetMetric()[0])["source"] != "local" {
		t.Errorf("d_seconds: %v", h)
	}
	want := []struct {
		le float64
		n  uint64
	}{{1e-05, 1}, {2.5e-05, 3}, {0.5, 6}, {5, 10}, {math.Inf(1), 15}}
	if len(h.GetBucket()) != len(want) {
		t.Fatalf("buckets: %v", h.GetBucket())
	}
	for i, b := range h.GetBucket() {
		if b.GetUpperBound() != want[i].le || b.GetCumulativeCount() != want[i].n {
			t.Errorf("bucket %d: le %v count %d; want %v %d", i, b.GetUpperBound(), b.GetCumulativeCount(), want[i].le, want[i].n)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("full")
	}
	f.n--
	return len(p), nil
}

// TestErr: the first write error sticks and nothing more is written.
func TestErr(t *testing.T) {
	f := &failWriter{n: 2}
	w := NewWriter(f)
	w.Header("a", "A.", Gauge)
	w.Sample("a", 1)
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	w.Sample("a", 2)
	w.Sample("a", 3)
	if w.Err() == nil || w.Err().Error() != "full" {
		t.Errorf("Err() = %v; want full", w.Err())
	}
}

// TestSampleNoAllocs: a sample line reuses the Writer's buffer.
func TestSampleNoAllocs(t *testing.T) {
	w := NewWriter(discard{})
	w.Sample("warm", 1, "k", "v")
	if n := testing.AllocsPerRun(100, func() {
		w.Sample("x_total", 12.5, "k", "v\"")
		w.Histogram("h", bounds, counts, 1.5, "k", "v")
	}); n != 0 {
		t.Errorf("%v allocations; want 0", n)
	}
}

var (
	bounds = []float64{0.1, 1}
	counts = []uint64{1, 2, 3}
)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
