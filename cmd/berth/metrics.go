package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"berth/netmgr/store"
)

// Metrics in Prometheus format, on the API socket at /metrics and, with --metrics-addr, on
// a TCP listener. State gauges are read from a store snapshot at scrape time (no counters
// to keep in sync); DNS counters come from dnsd through its Observe hook.

// stateCollector reports the records: sandboxes, networks and addresses per network.
type stateCollector struct {
	st        *store.Store
	sandboxes *prometheus.Desc
	networks  *prometheus.Desc
	addresses *prometheus.Desc
}

func newStateCollector(st *store.Store) *stateCollector {
	return &stateCollector{
		st:        st,
		sandboxes: prometheus.NewDesc("berth_sandboxes", "Sandboxes, by network mode.", []string{"mode"}, nil),
		networks:  prometheus.NewDesc("berth_networks", "Networks, by driver.", []string{"driver"}, nil),
		addresses: prometheus.NewDesc("berth_addresses_in_use", "Addresses allocated, per network.", []string{"network"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sandboxes
	ch <- c.networks
	ch <- c.addresses
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.st.Snapshot()
	modes := map[string]int{store.ModeBridge: 0, store.ModeNone: 0, store.ModeHost: 0, store.ModeContainer: 0}
	for _, sb := range snap.Sandboxes() {
		modes[sb.Mode]++
	}
	for m, n := range modes {
		ch <- prometheus.MustNewConstMetric(c.sandboxes, prometheus.GaugeValue, float64(n), m)
	}
	drivers := map[string]int{}
	for _, n := range snap.Networks() {
		drivers[n.Driver]++
		if n.Driver == store.DriverBridge {
			ch <- prometheus.MustNewConstMetric(c.addresses, prometheus.GaugeValue,
				float64(len(snap.NetworkAddresses(n.ID))), n.Name)
		}
	}
	for d, n := range drivers {
		ch <- prometheus.MustNewConstMetric(c.networks, prometheus.GaugeValue, float64(n), d)
	}
}

// newRegistry builds the daemon's registry: Go runtime and process metrics (goroutines,
// fds, RSS: what `make stress` compares) plus the state gauges and dnsd's counters.
func newRegistry(st *store.Store, dns prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStateCollector(st),
	)
	if dns != nil {
		reg.MustRegister(dns)
	}
	return reg
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
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
