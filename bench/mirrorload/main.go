// Command mirrorload is a fake cluster host for benchmarks: it creates a global network
// in the cluster store (or finds it) and publishes N endpoints on it through package
// cluster's own publisher, from a memory store of N sandboxes, then holds its lease until
// killed. A real daemon on another host then mirrors them (bench/mirror.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"berth/cluster"
	"berth/netmgr"
	"berth/store"
)

func main() {
	etcd := flag.String("etcd", "127.0.0.1:2379", "etcd endpoint")
	n := flag.Int("n", 10000, "endpoints to publish")
	name := flag.String("network", "ov", "global network name")
	subnet := flag.String("subnet", "10.128.0.0/16", "its subnet")
	addr := flag.String("addr", "192.0.2.99", "the fake host's underlay address")
	flag.Parse()
	if err := run(*etcd, *n, *name, netip.MustParsePrefix(*subnet), netip.MustParseAddr(*addr)); err != nil {
		fmt.Fprintln(os.Stderr, "mirrorload:", err)
		os.Exit(1)
	}
}

func run(etcd string, count int, name string, subnet netip.Prefix, addr netip.Addr) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st := store.NewMemory()
	id := strings.Repeat("ab", 32)
	nw := &store.Network{ID: id, Name: name, Driver: store.DriverOverlay, Scope: store.ScopeGlobal, ICC: true,
		Bridge: "br-" + id[:12], Created: time.Now().UTC(), Options: map[string]string{}, Labels: map[string]string{},
		Subnets: []store.Subnet{{Subnet: subnet, Gateway: subnet.Addr().Next()}}}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := cluster.New(cluster.Config{Endpoints: []string{etcd}, Advertise: addr, HostID: "fffffffffffffff0",
		Log: log, Snapshot: st.Snapshot, Apply: func(context.Context, netmgr.RemoteUpdate) error { return nil }})
	if err != nil {
		return err
	}
	defer c.Close()
	vni, err := c.CreateNetwork(ctx, nw)
	if err != nil {
		return fmt.Errorf("create network: %w", err)
	}
	nw.VNI = vni
	a := subnet.Addr().Next().Next()
	err = st.Update(func(tx *store.Tx) error {
		if err := tx.PutNetwork(nw); err != nil {
			return err
		}
		for i := range count {
			sb := &store.Sandbox{ID: fmt.Sprintf("%064x", i+1), Name: fmt.Sprintf("r%d", i), Mode: store.ModeBridge,
				State: store.StateReady, Created: time.Now().UTC()}
			ep := &store.Endpoint{ID: fmt.Sprintf("%063xe", i+1), NetworkID: id, SandboxID: sb.ID, IfName: "eth0",
				IPv4: a, DNSNames: []string{sb.Name}}
			b := a.As4()
			ep.MAC = fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
			a = a.Next()
			if err := tx.PutSandbox(sb); err != nil {
				return err
			}
			if err := tx.PutEndpoint(ep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	t0 := time.Now()
	c.Kick()
	fmt.Printf("publishing %d endpoints on %s (vni %d)\n", count, name, vni)
	go func() { _ = c.Run(ctx) }()
	<-ctx.Done()
	fmt.Printf("held for %s\n", time.Since(t0).Round(time.Millisecond))
	return nil
}
