package daemon

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"berth/internal/promtext"
)

// The Go runtime and process metrics of /metrics, under the names, types and HELP texts of
// Prometheus' Go client (client_golang's Go and process collectors; go_threads' HELP says
// what it counts here), so dashboards built for those keep working. Everything is read at
// scrape time with the standard library: runtime.ReadMemStats and /proc. Nothing runs at
// package init, which every CLI command (the same binary as the daemon) would pay for. A
// /proc read that fails leaves its metrics out.

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on every Linux
// architecture Go supports (procfs and client_golang use the same constant).
const userHZ = 100

// procDir is where proc(5) is mounted; tests point it elsewhere.
var procDir = "/proc"

// writeGoMetrics writes the Go runtime families: go_goroutines, go_info, the memstats
// subset and go_threads (from /proc/self/status).
func writeGoMetrics(w *promtext.Writer) {
	gauge(w, "go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	w.Header("go_info", "Information about the Go environment.", promtext.Gauge)
	w.Sample("go_info", 1, "version", runtime.Version())

	// The HELP texts are client_golang's, word for word. ReadMemStats stops the world for
	// a few µs: fine once per scrape.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, m := range []struct {
		name, help string
		typ        promtext.Type
		v          float64
	}{
		{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", promtext.Gauge, float64(ms.Alloc)},
		{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", promtext.Counter, float64(ms.TotalAlloc)},
		{"go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", promtext.Counter, float64(ms.Frees)},
		{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", promtext.Gauge, float64(ms.HeapAlloc)},
		{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", promtext.Gauge, float64(ms.HeapInuse)},
		{"go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", promtext.Gauge, float64(ms.HeapObjects)},
		{"go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", promtext.Gauge, float64(ms.LastGC) / 1e9},
		{"go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", promtext.Counter, float64(ms.Mallocs)},
		{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", promtext.Gauge, float64(ms.NextGC)},
		{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", promtext.Gauge, float64(ms.Sys)},
	} {
		w.Header(m.name, m.help, m.typ)
		w.Sample(m.name, m.v)
	}

	// client_golang counts the threads the runtime created (runtime.ThreadCreateProfile);
	// the kernel's count of the threads there are now is the same but for threads that exited.
	if b, err := os.ReadFile(procDir + "/self/status"); err == nil {
		if n, ok := statusThreads(b); ok {
			gauge(w, "go_threads", "Number of OS threads in the process.", float64(n))
		}
	}
}

// writeProcessMetrics writes the process families from /proc/self/stat, /proc/stat,
// /proc/self/fd and RLIMIT_NOFILE.
func writeProcessMetrics(w *promtext.Writer) {
	var st procStat
	haveStat := false
	if b, err := os.ReadFile(procDir + "/self/stat"); err == nil {
		st, haveStat = parseProcStat(b)
	}
	if haveStat {
		w.Header("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", promtext.Counter)
		w.Sample("process_cpu_seconds_total", float64(st.utime+st.stime)/userHZ)
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		// RLIM_INFINITY is ^uint64(0); as a float64 it is 1.8e19, as client_golang writes it.
		gauge(w, "process_max_fds", "Maximum number of open file descriptors.", float64(rl.Cur))
	}
	if n, ok := openFDs(); ok {
		gauge(w, "process_open_fds", "Number of open file descriptors.", float64(n))
	}
	if haveStat {
		gauge(w, "process_resident_memory_bytes", "Resident memory size in bytes.", float64(st.rss)*float64(os.Getpagesize()))
		if b, err := os.ReadFile(procDir + "/stat"); err == nil {
			if btime, ok := bootTime(b); ok {
				gauge(w, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
					float64(btime)+float64(st.starttime)/userHZ)
			}
		}
		gauge(w, "process_virtual_memory_bytes", "Virtual memory size in bytes.", float64(st.vsize))
	}
}

// gauge writes a gauge family of one sample without labels.
func gauge(w *promtext.Writer, name, help string, v float64) {
	w.Header(name, help, promtext.Gauge)
	w.Sample(name, v)
}

// procStat holds the fields of /proc/<pid>/stat that the process metrics use.
type procStat struct {
	utime, stime uint64 // CPU time in user and kernel mode, in 1/userHZ s
	starttime    uint64 // start after boot, in 1/userHZ s
	vsize        uint64 // virtual memory size in bytes
	rss          uint64 // resident set size in pages
}

// parseProcStat parses /proc/<pid>/stat (proc(5)): pid (comm) state ppid …. comm may hold
// spaces and parentheses, so the fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state): field n is f[n-3]
	if len(f) < 24-3+1 {
		return procStat{}, false
	}
	var st procStat
	for _, x := range []struct {
		field int
		dst   *uint64
	}{{14, &st.utime}, {15, &st.stime}, {22, &st.starttime}, {23, &st.vsize}, {24, &st.rss}} {
		v, err := strconv.ParseUint(string(f[x.field-3]), 10, 64)
		if err != nil {
			return procStat{}, false
		}
		*x.dst = v
	}
	return st, true
}

// statusThreads returns the Threads: value of /proc/<pid>/status.
func statusThreads(b []byte) (uint64, bool) {
	return lineValue(b, "Threads:")
}

// bootTime returns the btime value of /proc/stat: the boot time in seconds since the epoch.
func bootTime(b []byte) (uint64, bool) {
	return lineValue(b, "btime")
}

// lineValue returns the number after key on the line that starts with key followed by
// a blank.
func lineValue(b []byte, key string) (uint64, bool) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		v, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
		return v, err == nil
	}
	return 0, false
}

// openFDs counts the entries of /proc/self/fd (the one reading it among them, as
// client_golang counts).
func openFDs() (int, bool) {
	d, err := os.Open(procDir + "/self/fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	return len(names), err == nil
}
