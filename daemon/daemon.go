// Package daemon is what runs inside `berth daemon`: it composes the store, netmgr and
// dnsd, replays the state at start, and serves the HTTP API (and /metrics) on its socket
// (unix, or tcp:// behind mutual TLS). It holds no records of its own and does no kernel
// work itself; the CLI reaches it only over the socket.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"

	"berth/api"
	"berth/cluster"
	"berth/dnsd"
	"berth/dnsd/cache"
	"berth/netmgr"
	"berth/netmgr/firewall"
	"berth/netmgr/kernel"
	"berth/netmgr/portmap"
	"berth/resolver"
	"berth/store"
)

// Where sandboxes live on the host, fixed by the iproute2 convention so `ip netns exec NAME`
// works on berth sandboxes too.
const (
	netNSDir = "/run/netns"
	filesDir = "/etc/netns"
)

// shutdownTimeout bounds how long in-flight requests may finish after SIGTERM; a request
// cut short is safe because netmgr persists before kernel work and Restore undoes leftovers.
const shutdownTimeout = 10 * time.Second

// daemon composes the daemon's components. It holds no state of its own: the store has the
// records, netmgr the kernel objects and dnsd the DNS sockets.
type daemon struct {
	st  *store.Store
	mgr *netmgr.Manager
	dns *dnsd.Server
	// dnsMu orders the DNS servers' starts and stops: those of a create (serveNew) and
	// those following the changes netmgr reports (Changed).
	dnsMu   sync.Mutex
	events  *eventHub
	metrics http.Handler  // /metrics; nil in tests that build a daemon by hand
	kernel  *kernel.Linux // nil in tests that build a daemon by hand
	// cluster is the cluster store client (--cluster-store), or nil.
	cluster *cluster.Client
	log     *slog.Logger
	cfg     Config
}

// Run validates cfg, starts the daemon and serves until ctx is done or SIGINT or SIGTERM.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	d, err := openDaemon(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	rctx, stopRepair := context.WithCancel(ctx)
	repaired := d.repairFirewall(rctx)
	clustered := d.runCluster(rctx)
	// Before close: a repair reads the store, the mirror writes it.
	defer func() { stopRepair(); <-repaired; <-clustered }()
	ln, err := cfg.listen.listen(cfg.socketGID)
	if err != nil {
		return err
	}
	apiSrv := newServer(d)
	srv := &http.Server{
		Handler:           apiSrv.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.Metrics != "" {
		stopMetrics, err := serveMetrics(cfg.Metrics, d.metrics)
		if err != nil {
			ln.Close() // a failed start leaves no API socket (nor its file) behind
			return err
		}
		defer stopMetrics()
	}
	var dockerErr <-chan error // nil without --docker-socket: never ready
	if cfg.DockerSocket != "" {
		var stopDocker func(context.Context) error
		if stopDocker, dockerErr, err = d.serveDocker(); err != nil {
			ln.Close()
			return err
		}
		defer func() { // after the API server's shutdown, with its own deadline
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			stopDocker(sctx)
		}()
	}
	// Event streams end when shutdown starts, so a graceful stop never waits on them.
	srv.RegisterOnShutdown(apiSrv.stopStreams)
	// Served only once every other listener is up: until then the start can still fail.
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("daemon started", "root", cfg.Root, "socket", cfg.Socket, "iptables", cfg.IPTables)
	// Under systemd (Type=notify) say ready only now: state restored, DNS reopened, socket up.
	if _, err := sdnotify.SdNotify(false, sdnotify.SdNotifyReady); err != nil {
		log.Warn("sd_notify", "err", err)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", cfg.Socket, err)
	case err := <-dockerErr:
		return fmt.Errorf("serve %s: %w", cfg.DockerSocket, err)
	case <-ctx.Done():
	}
	log.Info("daemon stopping")
	sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// openDaemon opens the state, builds netmgr over the real kernel and reconciles the two.
func openDaemon(ctx context.Context, cfg Config, log *slog.Logger) (*daemon, error) {
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create root: %w", err)
	}
	if err := os.MkdirAll(cfg.ExecRoot, 0o755); err != nil {
		return nil, fmt.Errorf("create exec-root: %w", err)
	}
	st, err := store.Open(filepath.Join(cfg.Root, "state.db"))
	if err != nil {
		return nil, err // ErrLocked reads as one line: another daemon has this root
	}
	// Nothing of this daemon's lives in root/sandboxes (sandbox file copies are under
	// --exec-root), so a directory there is a leftover and goes. A runtime's bind mount of
	// a file in it keeps its file.
	os.RemoveAll(filepath.Join(cfg.Root, "sandboxes"))
	k := kernel.New(log)
	// Each published port holds a socket per host address (netmgr/portmap).
	if n, err := portmap.RaiseFileLimit(); err != nil {
		log.Warn("open file limit", "limit", n, "err", err)
	} else {
		log.Debug("open file limit", "limit", n)
	}
	dns := dnsd.New(dnsd.Config{Store: st, Host: cfg.hostDNS, Log: log,
		CleanFile: filepath.Join(cfg.ExecRoot, "dns-clean"),
		Cache:     cache.New(cache.Config{MaxEntries: cfg.DNSCacheSize, MaxBytes: cfg.DNSCacheMemory})})
	d := &daemon{st: st, dns: dns, events: newEventHub(), log: log, cfg: cfg,
		metrics: newMetricsHandler(st, dns), kernel: k}
	var cl netmgr.Cluster
	if cfg.Cluster.enabled() {
		if d.cluster, err = d.openCluster(); err != nil {
			st.Close()
			return nil, err
		}
		cl = d.cluster
	}
	mcfg := netmgr.Config{
		Store:    st,
		Kernel:   k,
		Log:      log,
		NetNSDir: netNSDir,
		FilesDir: filesDir,
		RunDir:   cfg.ExecRoot,
		HostDNS:  cfg.hostDNS,
		// The data plane: berth's own nftables tables, rebuilt from the records after
		// every change, and its bridges opened in other programs' forward chains.
		Firewall:      firewall.Host(log),
		Ports:         portmap.New(log),
		IPForward:     cfg.IPForward,
		NoDefaultICC:  !cfg.ICC,
		Observer:      d,
		Cluster:       cl,
		DefaultBridge: cfg.Bridge,
		Pools:         cfg.Pools,
		NoIPTables:    !cfg.IPTables,
	}
	if !cfg.IPTables {
		// No rules at all, as dockerd --iptables=false; forwarding is still enabled
		// (--ip-forward), as there. The tables of an earlier run with rules go.
		mcfg.Firewall = func(firewall.State) error { return nil }
		if err := firewall.Remove(); err != nil {
			log.Warn("remove berth's nftables tables of an earlier run", "err", err)
		}
	}
	d.mgr = netmgr.New(mcfg)
	if err := d.restore(ctx); err != nil {
		st.Close()
		return nil, err
	}
	k.StartNetNSPool(netnsPoolSize) // after the restore, which it would only slow down
	return d, nil
}

// repairFirewall starts the loop that checks the firewall and repairs it (see
// netmgr.Manager.RepairFirewall) until ctx is done; the returned channel is closed when
// it has stopped.
func (d *daemon) repairFirewall(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if !d.cfg.IPTables {
		close(done) // no rules to keep
		return done
	}
	changes, err := firewall.Changes(ctx) // here: the monitor must listen in the daemon's netns
	if err != nil {
		d.log.Warn("nftables monitor: firewall checked periodically only", "err", err)
	}
	interval := d.cfg.FirewallCheck
	if interval == 0 {
		interval = time.Duration(1<<63 - 1) // after changes only
	}
	go func() {
		defer close(done)
		d.mgr.RepairFirewall(ctx, netmgr.FirewallRepair{Interval: interval, Changes: changes,
			Missing: firewall.Missing, Recheck: firewall.RecheckForward, Forget: firewall.Forget})
	}()
	return done
}

// netnsPoolSize is how many netns the daemon keeps made ahead of need (kernel.StartNetNSPool):
// a create takes one and one is made in the background; the second covers a create
// that comes before that one is done.
const netnsPoolSize = 2

// restoreWorkers is how many sandboxes' DNS servers restore starts at once.
const restoreWorkers = 8

// restore replays the store into the kernel after a (re)start, then reopens the embedded
// DNS of every sandbox that has one.
func (d *daemon) restore(ctx context.Context) error {
	if err := d.mgr.Restore(ctx); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	// Each server's start is mostly waiting on the kernel (a thread entering the netns,
	// nftables there), so a few run at once: with 1,000 sandboxes this is most of the time
	// until every 127.0.0.11 answers again.
	snap := d.st.Snapshot()
	work := make(chan *store.Sandbox)
	var wg sync.WaitGroup
	for range restoreWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sb := range work {
				if err := d.serveDNS(snap, sb); err != nil {
					// One broken sandbox must not keep every other one from resolving.
					d.log.Error("restore dns", "sandbox", sb.Name, "err", err)
				}
			}
		}()
	}
	for _, sb := range snap.Sandboxes() {
		work <- sb
	}
	close(work)
	wg.Wait()
	d.events.publish(api.Event{Type: "daemon", Action: "restart", Name: d.cfg.Root})
	return nil
}

// serveDNS starts the embedded DNS of sb if it needs one: a sandbox with its own netns that
// is (or was, in this daemon's life) on a user-defined network. As in Docker, the server is
// not stopped when the last user-defined network is disconnected; it then forwards.
// Container-mode sandboxes share the server of the sandbox whose netns they join.
func (d *daemon) serveDNS(snap *store.Snapshot, sb *store.Sandbox) error {
	if sb.Mode != store.ModeBridge || !resolver.Embedded(snap, sb.ID) {
		return nil
	}
	return d.dns.Serve(sb)
}

// close stops the DNS servers, then releases the state file they read.
func (d *daemon) close() {
	if d.kernel != nil {
		d.kernel.StopNetNSPool()
	}
	d.dns.Close()
	if d.cluster != nil {
		if err := d.cluster.Close(); err != nil {
			d.log.Warn("close cluster store client", "err", err)
		}
	}
	d.mgr.Settle() // veths of removed sandboxes still being deleted
	if err := d.st.Close(); err != nil {
		d.log.Error("close state", "err", err)
	}
}
