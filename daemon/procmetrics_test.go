package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"berth/internal/promtext"
)

func TestParseProcStat(t *testing.T) {
	// Fields 14, 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss); comm with a space
	// and parentheses.
	const stat = "4242 (be rth) (x)) S 1 4242 4242 0 -1 4194560 1200 0 0 0 " +
		"250 75 0 0 20 0 9 0 123456 1259388928 5120 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n"
	st, ok := parseProcStat([]byte(stat))
	if want := (procStat{utime: 250, stime: 75, starttime: 123456, vsize: 1259388928, rss: 5120}); !ok || st != want {
		t.Errorf("parseProcStat = %+v, %v; want %+v", st, ok, want)
	}
	for _, bad := range []string{
		"",
		"4242 (berth S 1 2 3",
		"4242 (berth) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 75 0 0 20 0 9 0 123456 1259388928\n",
		"4242 (berth) S 1 4242 4242 0 -1 4194560 1200 0 0 0 x 75 0 0 20 0 9 0 123456 1259388928 5120\n",
	} {
		if st, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("parseProcStat(%q) = %+v; want failure", bad, st)
		}
	}
}

func TestLineValue(t *testing.T) {
	const status = "Name:\tberth\nThreadsX:\t99\nThreads:\t7\nSigQ:\t0/63569\n"
	if n, ok := statusThreads([]byte(status)); !ok || n != 7 {
		t.Errorf("statusThreads = %d, %v; want 7", n, ok)
	}
	const stat = "cpu  1 2 3\nbtimeout 5\nbtime 1763900000\nprocesses 1234\n"
	if n, ok := bootTime([]byte(stat)); !ok || n != 1763900000 {
		t.Errorf("bootTime = %d, %v; want 1763900000", n, ok)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "btime x\n", "btime\n"} {
		if n, ok := bootTime([]byte(bad)); ok {
			t.Errorf("bootTime(%q) = %d; want failure", bad, n)
		}
	}
}

// TestProcMetricsWithoutProc: with nothing readable under procDir, the /proc metrics are
// left out and the rest is still a document that parses and lints.
func TestProcMetricsWithoutProc(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte("cpu 1 2 3\n"), 0o644); err != nil { // no btime
		t.Fatal(err)
	}
	old := procDir
	procDir = dir
	defer func() { procDir = old }()

	var b strings.Builder
	w := promtext.NewWriter(&b)
	writeGoMetrics(w)
	writeProcessMetrics(w)
	text := b.String()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	for _, name := range []string{"go_threads", "process_cpu_seconds_total", "process_open_fds",
		"process_resident_memory_bytes", "process_start_time_seconds", "process_virtual_memory_bytes"} {
		if mfs[name] != nil {
			t.Errorf("%s present without /proc", name)
		}
	}
	for _, name := range []string{"go_goroutines", "go_info", "go_memstats_sys_bytes", "process_max_fds"} {
		if mfs[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if problems, err := promlint.New(strings.NewReader(text)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v\n%s", problems, err, text)
	}
}
