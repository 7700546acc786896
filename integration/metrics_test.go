package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// scrape GETs /metrics from the daemon's API socket.
func (d *daemon) scrape(t *testing.T) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}}
	resp, err := hc.Get("http://berth/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	d := newDaemon(t)
	d.start("--metrics-addr", "127.0.0.1:9323")
	d.must("network", "create", "--subnet", "10.58.0.0/24", "app")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	d.must("sandbox", "create", "--name", "db", "--network", "app")
	if r := dig(t, "web", "db"); len(r.values("A")) != 1 {
		t.Fatalf("dig db: %s", r.raw)
	}
	m := d.scrape(t)
	for _, want := range []string{
		`berth_sandboxes{mode="bridge"} 2`,
		`berth_addresses_in_use{network="app"} 2`,
		`berth_networks{driver="bridge"} 2`,
		"go_goroutines ",
		`berth_dns_answers_total{source="local"}`,
		"process_open_fds ",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	resp, err := http.Get("http://127.0.0.1:9323/metrics")
	if err != nil {
		t.Fatalf("--metrics-addr: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `berth_sandboxes{mode="bridge"} 2`) {
		t.Errorf("TCP /metrics lacks the sandbox gauge")
	}
}
