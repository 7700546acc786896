package dnsd

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"berth/dnsd/cache"
	"berth/internal/promtext"
	"berth/resolver"
	"berth/store"
)

// Defaults for the zero values of Config. They are choices, not promises (Docker's 1024 and
// 4 s are constants too); see the field comments.
const (
	DefaultMaxInflight      = 256  // forwarded queries in flight per sandbox
	DefaultMaxInflightTotal = 4096 // forwarded queries in flight for the daemon
	DefaultQueueWait        = 100 * time.Millisecond
	DefaultForwardTimeout   = 2 * time.Second // one upstream attempt (Docker: 4 s, libnetwork #2374)
	DefaultForwardDeadline  = 5 * time.Second // all attempts of one query; stub resolvers retry at 5 s
	DefaultTCPIdleTimeout   = 5 * time.Second // a client TCP connection with no query under way (CoreDNS, miekg: a few s)
	DefaultMaxTCPConns      = 64              // open client TCP connections per sandbox
	stopWait                = 1 * time.Second // how long Stop waits for in-flight handlers
	serviceAddr             = "127.0.0.11"    // the address every sandbox's resolv.conf names
	udpReadSize             = 4096            // client queries are small; room for EDNS options
	ednsSize                = 1232            // UDP size we advertise (DNS flag day 2020)
	localTTL                = 600             // libnetwork respTTL; clients cache local names this long
	refusedLogEvery         = 2 * time.Second // rate limit of the "inflight limit" warning
	hostRefresh             = 1 * time.Second // how long one Config.Host result is used
)

// Config configures a Server. Zero limits take the defaults above.
type Config struct {
	Store *store.Store               // always non-nil
	Host  func() resolver.HostConfig // the daemon's DNS view, read at most once per hostRefresh when forwarding; or nil (no host upstreams)
	Log   *slog.Logger               // or nil (discard)

	// CleanFile, if set, is where Close lists the sandboxes whose NAT tables it keeps with
	// no conntrack entry that needs a reset, with the ports each table leads to, and where
	// New reads (then removes) that list. A start after a clean stop binds those ports
	// without reading the tables first and skips the resets (each walks the whole
	// conntrack hash: seconds of CPU with 1,000 sandboxes); the tables are checked in the
	// background once every server answers. After a crash there is no list: every kept
	// table is read before its server starts, and reset. A tmpfs (the daemon's
	// --exec-root): tables die at reboot.
	CleanFile string

	// Cache, if not nil, keeps upstream replies for every sandbox (cached.go); the daemon
	// makes it (--dns-cache-size). nil: every forwarded query goes upstream.
	Cache *cache.Cache

	MaxInflight      int           // forwarded queries in flight per sandbox; beyond it REFUSED
	MaxInflightTotal int           // forwarded queries in flight for all sandboxes together
	QueueWait        time.Duration // how long a query waits for an inflight slot before REFUSED
	ForwardTimeout   time.Duration // per upstream attempt (dial + exchange)
	ForwardDeadline  time.Duration // whole forward, all upstreams
	TCPIdleTimeout   time.Duration // client TCP connections with no query under way longer are closed
	MaxTCPConns      int           // client TCP connections per sandbox; a new one closes the longest idle
}

func (c *Config) setDefaults() {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Host == nil {
		c.Host = func() resolver.HostConfig { return resolver.HostConfig{} }
	}
	setDefault(&c.MaxInflight, DefaultMaxInflight)
	setDefault(&c.MaxInflightTotal, DefaultMaxInflightTotal)
	setDefault(&c.QueueWait, DefaultQueueWait)
	setDefault(&c.ForwardTimeout, DefaultForwardTimeout)
	setDefault(&c.ForwardDeadline, DefaultForwardDeadline)
	setDefault(&c.TCPIdleTimeout, DefaultTCPIdleTimeout)
	setDefault(&c.MaxTCPConns, DefaultMaxTCPConns)
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Server runs the embedded DNS of every sandbox it was asked to Serve.
//
// Goroutines: per sandbox, one reading the UDP socket, which answers local names inline
// and hands forwarded ones to the relay (udp.go, relay.go), one per unusual UDP query,
// one accepting TCP and miekg's one per TCP connection (at most MaxTCPConns, see
// tcpconn.go), and while it forwards to servers inside the sandbox, one locked in its
// netns (sockets.go); for all sandboxes, one relay loop. Forwarded queries hold an
// inflight slot, and a query that finds none within QueueWait is REFUSED, so waiting
// goroutines stay bounded by the query rate times QueueWait (inflight.go).
type Server struct {
	cfg     Config
	fwd     *forwarder
	relay   *relay
	metrics *Metrics
	global  chan struct{}            // inflight slots shared by all sandboxes
	host    atomic.Pointer[hostView] // the last Config.Host result

	// upstreams lists where a sandbox's unknown names go; tests replace it.
	upstreams func(snap *store.Snapshot, sandboxID string) []resolver.Upstream

	mu        sync.Mutex          // guards following
	sbs       map[string]*sandbox // starting or serving
	wasClean  map[string]natPorts // Config.CleanFile's list, until each sandbox's first serve
	closed    bool
	unsettled []*sandbox // served on a kept NAT table, its table check or conntrack reset still to do
	settling  bool       // a goroutine is working through unsettled
	queued    int        // settles queued in this run (tests)
}

// New returns a Server that serves nothing until Serve is called.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg:    cfg,
		global: make(chan struct{}, cfg.MaxInflightTotal),
		sbs:    make(map[string]*sandbox),
	}
	s.wasClean = readCleanFile(cfg.CleanFile, cfg.Log)
	s.metrics = newMetrics(func() int { return len(s.global) }, cfg.Cache)
	s.relay = newRelay(cfg.ForwardTimeout, cfg.ForwardDeadline, s.metrics, cfg.Log)
	s.fwd = &forwarder{cfg: forwardConfig{
		Timeout:  cfg.ForwardTimeout,
		Deadline: cfg.ForwardDeadline,
		Dial:     dialIn,
	}, relay: s.relay, metrics: s.metrics}
	s.upstreams = func(snap *store.Snapshot, sandboxID string) []resolver.Upstream {
		return resolver.Upstreams(snap, sandboxID, s.hostView().hc)
	}
	return s
}

// WriteMetrics writes the server's DNS metrics (berth_dns_*; see Metrics) in the
// Prometheus text format.
func (s *Server) WriteMetrics(w *promtext.Writer) { s.metrics.WriteMetrics(w) }

// hostView is one Config.Host result and when it was taken.
type hostView struct {
	hc resolver.HostConfig
	at time.Time
}

// hostView returns the daemon's DNS view, at most hostRefresh old: Config.Host reads the
// host's resolv.conf, which is too slow to do per query and changes rarely.
func (s *Server) hostView() *hostView {
	if v := s.host.Load(); v != nil && time.Since(v.at) < hostRefresh {
		return v
	}
	v := &hostView{hc: s.cfg.Host(), at: time.Now()}
	s.host.Store(v)
	return v
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("dns server closed")

// errNoNetNS refuses a sandbox without a netns of its own (host mode).
var errNoNetNS = errors.New("sandbox has no netns path")

// Serve starts the embedded DNS of sb: UDP and TCP sockets on 127.0.0.11 inside
// sb.NetNSPath (and on fd62:6572:7468::11, which it adds to lo, unless IPv6 is off there),
// the NAT from port 53 to them, and the servers. It returns once all
// servers are reading, so the first query after it is answered. Serving an already served
// sandbox is a no-op.
func (s *Server) Serve(sb *store.Sandbox) error { return s.serve(sb, false) }

// ServeNew is Serve for a sandbox whose netns the caller has just made and nobody has used
// yet (a sandbox create): there is no table of an earlier run to look for, and no client
// whose conntrack entry needs a reset, which saves a create a netlink dump and a trip into
// the netns.
func (s *Server) ServeNew(sb *store.Sandbox) error { return s.serve(sb, true) }

func (s *Server) serve(sb *store.Sandbox, fresh bool) error {
	if sb.NetNSPath == "" {
		// Never bind 127.0.0.11 or install NAT in the daemon's own netns.
		return fmt.Errorf("serve dns in sandbox %q: %w", sb.Name, errNoNetNS)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if e, ok := s.sbs[sb.ID]; ok {
		s.mu.Unlock()
		<-e.ready
		return e.err
	}
	e := &sandbox{id: sb.ID, nsPath: sb.NetNSPath, ready: make(chan struct{})}
	var listed natPorts
	if !fresh {
		listed = s.wasClean[sb.ID]
	}
	// The list tells how the last run left the table; once this run has served the
	// sandbox, a Stop may have removed it (a rename serves it again).
	delete(s.wasClean, sb.ID)
	s.sbs[sb.ID] = e
	s.mu.Unlock()

	err := s.start(e, fresh, listed)
	unsettled := err == nil && e.nat.unsettled()
	s.mu.Lock()
	if err != nil {
		e.moveLocked(phaseFailed)
		if s.sbs[sb.ID] == e { // not already removed by Stop, and not a newer one
			delete(s.sbs, sb.ID)
		}
		e.err = fmt.Errorf("serve dns in sandbox %q: %w", sb.Name, err)
	} else {
		e.moveLocked(phaseServing) // unless Stop made it stopping meanwhile
	}
	s.mu.Unlock()
	close(e.ready)
	if unsettled {
		s.queueSettle(e)
	}
	return e.err
}

// Stop stops the embedded DNS of a sandbox: closes its sockets and removes the NAT table if
// the netns still exists (otherwise it went with the netns). Unknown IDs are ignored.
func (s *Server) Stop(sandboxID string) {
	s.mu.Lock()
	e, ok := s.sbs[sandboxID]
	if ok {
		delete(s.sbs, sandboxID)
		e.moveLocked(phaseStopping)
	}
	s.mu.Unlock()
	if ok {
		s.stop(e, false)
	}
}

// Close stops every sandbox's server; Serve fails afterwards. The NAT tables stay in the
// sandboxes' netns, as after a crash (Docker's live-restore keeps its rules the same way):
// the next daemon's Serve finds each one, binds its ports again and changes no rule, so
// a client retrying across the restart is answered as soon as the socket is back, and
// never meets a table being installed (see sandbox.listen).
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	sbs := s.sbs
	s.sbs = make(map[string]*sandbox)
	for _, e := range sbs {
		e.moveLocked(phaseStopping)
	}
	s.mu.Unlock()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards clean
		clean = make(map[string]natPorts)
	)
	for _, e := range sbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p := s.stop(e, true); p != (natPorts{}) {
				mu.Lock()
				clean[e.id] = p
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.relay.close()
	s.writeCleanFile(clean)
}
