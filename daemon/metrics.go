package daemon

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"berth/dnsd"
	"berth/internal/promtext"
	"berth/store"
)

// Metrics in the Prometheus text format, on the API socket at /metrics and, with
// --metrics-addr, on a TCP listener. State gauges are read from a store snapshot at scrape
// time (no counters to keep in sync); DNS counters come from dnsd. The Go runtime and
// process metrics (procmetrics.go) are read at scrape time too, under the names of
// Prometheus' Go client; client_golang itself, and VictoriaMetrics/metrics, cost every CLI
// command package init. Everything is written with internal/promtext.

// metricsHandler serves /metrics: the Go runtime and process metrics (goroutines, fds, RSS:
// what `make stress` compares), then the state gauges, then dnsd's counters. dns may be nil.
type metricsHandler struct {
	st  *store.Store
	dns *dnsd.Server
}

func newMetricsHandler(st *store.Store, dns *dnsd.Server) *metricsHandler {
	return &metricsHandler{st: st, dns: dns}
}

// ServeHTTP renders the whole exposition into a buffer and only then writes it, so a
// failure (a panic) on the way leaves no half response behind a 200.
func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	pw := promtext.NewWriter(&buf)
	writeGoMetrics(pw)
	writeProcessMetrics(pw)
	writeStateMetrics(pw, h.st.Snapshot())
	if h.dns != nil {
		h.dns.WriteMetrics(pw)
	}
	w.Header().Set("Content-Type", promtext.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes()) // an error here is the scraper gone
}

// writeStateMetrics writes the gauges of the records: sandboxes per mode (all four always
// there), networks per driver and addresses in use per network with addresses (bridge, overlay,
// macvlan, ipvlan).
func writeStateMetrics(w *promtext.Writer, snap *store.Snapshot) {
	modes := map[string]int{store.ModeBridge: 0, store.ModeNone: 0, store.ModeHost: 0, store.ModeContainer: 0}
	for _, sb := range snap.Sandboxes() {
		modes[sb.Mode]++
	}
	drivers := map[string]int{}
	type inUse struct {
		network string
		n       int
	}
	var addrs []inUse
	for _, n := range snap.Networks() {
		drivers[n.Driver]++
		if n.Bridged() || n.OnParent() { // networks with IPAM: bridge, overlay, macvlan, ipvlan
			addrs = append(addrs, inUse{n.Name, len(snap.NetworkAddresses(n.ID))})
		}
	}

	const (
		addresses = "berth_addresses_in_use"
		networks  = "berth_networks"
		sandboxes = "berth_sandboxes"
	)
	slices.SortFunc(addrs, func(a, b inUse) int { return strings.Compare(a.network, b.network) })
	for _, a := range addrs {
		w.Header(addresses, "Addresses allocated, per network.", promtext.Gauge)
		w.Sample(addresses, float64(a.n), "network", a.network)
	}
	for _, d := range slices.Sorted(maps.Keys(drivers)) {
		w.Header(networks, "Networks, by driver.", promtext.Gauge)
		w.Sample(networks, float64(drivers[d]), "driver", d)
	}
	for _, m := range slices.Sorted(maps.Keys(modes)) {
		w.Header(sandboxes, "Sandboxes, by network mode.", promtext.Gauge)
		w.Sample(sandboxes, float64(modes[m]), "mode", m)
	}
}

// serveMetrics serves /metrics on addr; the returned func stops it.
func serveMetrics(addr string, h http.Handler) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) // ends with Shutdown; a failing scrape target never stops the daemon
	return func() {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(c)
	}, nil
}
