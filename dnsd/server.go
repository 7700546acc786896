// Package dnsd owns berth's embedded DNS: one UDP and one TCP server per sandbox on
// 127.0.0.11, with sockets opened inside the sandbox's netns on random ports and an nftables
// NAT table there that redirects 127.0.0.11:53 to them (as Docker does, so a process in the
// sandbox can still bind port 53 itself). Answers come from resolver.Lookup over a store
// snapshot taken per query; names resolver does not own are forwarded upstream.
//
// dnsd decides nothing about names (that is resolver's job) and never writes the store.
package dnsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"

	"berth/internal/nsutil"
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
// netns (netns.go); for all sandboxes, one relay loop. Forwarded queries hold an inflight slot, and a query that
// finds none within QueueWait is REFUSED, so waiting goroutines stay bounded by the query
// rate times QueueWait.
type Server struct {
	cfg     Config
	fwd     *forwarder
	relay   *relay
	metrics *Metrics
	global  chan struct{}            // inflight slots shared by all sandboxes
	host    atomic.Pointer[hostView] // the last Config.Host result

	// upstreams lists where a sandbox's unknown names go; tests replace it.
	upstreams func(snap *store.Snapshot, sandboxID string) []resolver.Upstream

	mu        sync.Mutex // guards following
	sbs       map[string]*sandbox
	wasClean  map[string]natPorts // Config.CleanFile's list, until each sandbox's first serve
	closed    bool
	pending   []*sandbox // served on a kept NAT table, conntrack reset or table check still to do
	resetting bool       // a goroutine is working through pending
	queued    int        // resets and checks queued in this run (tests)
}

// natPorts are the ports a sandbox's NAT table leads 127.0.0.11:53 to.
type natPorts struct{ udp, tcp uint16 }

// New returns a Server that serves nothing until Serve is called.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg:    cfg,
		global: make(chan struct{}, cfg.MaxInflightTotal),
		sbs:    make(map[string]*sandbox),
	}
	s.wasClean = readCleanFile(cfg.CleanFile, cfg.Log)
	s.metrics = newMetrics(func() int { return len(s.global) })
	s.relay = newRelay(cfg.ForwardTimeout, cfg.ForwardDeadline, s.metrics)
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

// sandbox is the serving state of one sandbox.
type sandbox struct {
	id     string
	nsPath string
	fresh  bool     // a netns made moments ago (ServeNew)
	listed natPorts // the ports of its table on the clean list (Config.CleanFile), or zero
	h      *handler
	ready  chan struct{} // closed when start finished; err then tells how
	err    error

	netns    *nsutil.Handle   // the netns the sockets are in (nsPath may name another later); good until stop
	nsID     nsutil.ID        // netns's
	udp      *net.UDPConn     // good until stop
	tcp      *net.TCPListener // good until stop
	natKept  bool             // start kept the NAT table of an earlier run, leading to its ports
	unread   bool             // kept on the clean list's word: the table itself is checked later
	natMu    sync.Mutex       // held by checkNAT and by stop
	resetErr error            // the conntrack reset after installing the table failed (logged)
	clean    atomic.Bool      // no conntrack entry made before the table needs a reset
	udpSrv   *udpServer
	tcpSrv   *dns.Server
	cancel   context.CancelFunc // cancels in-flight forwards
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("dns server closed")

// errNoNetNS refuses a sandbox without a netns of its own (host mode).
var errNoNetNS = errors.New("sandbox has no netns path")

// Serve starts the embedded DNS of sb: UDP and TCP sockets on 127.0.0.11 inside
// sb.NetNSPath, the NAT from 127.0.0.11:53 to them, and the servers. It returns once both
// servers are reading, so the first query after it is answered. Serving an already served
// sandbox is a no-op.
func (s *Server) Serve(sb *store.Sandbox) error { return s.serve(sb, false) }

// ServeNew is Serve for a sandbox whose netns the caller has just made and nobody has used
// yet (a sandbox create): there is no table of an earlier run to look for, and no client
// whose conntrack entry needs a reset, which saves a netlink dump and a trip into the
// netns (~0.5 ms of a create).
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
	e := &sandbox{id: sb.ID, nsPath: sb.NetNSPath, fresh: fresh, ready: make(chan struct{})}
	if !fresh {
		e.listed = s.wasClean[sb.ID]
	}
	// The list tells how the last run left the table; once this run has served the
	// sandbox, a Stop may have removed it (a rename serves it again).
	delete(s.wasClean, sb.ID)
	s.sbs[sb.ID] = e
	s.mu.Unlock()

	e.err = s.start(e)
	if e.err != nil {
		s.mu.Lock()
		if s.sbs[sb.ID] == e { // not already removed by Stop, and not a newer one
			delete(s.sbs, sb.ID)
		}
		s.mu.Unlock()
		e.err = fmt.Errorf("serve dns in sandbox %q: %w", sb.Name, e.err)
	}
	close(e.ready)
	if e.err == nil && (e.unread || e.natKept && !e.clean.Load()) {
		s.queueReset(e)
	}
	return e.err
}

// queueReset schedules the background work of a sandbox served on the NAT table of an
// earlier run: reading the table, if the clean list was taken at its word (see
// Config.CleanFile), or else the conntrack reset. Entries made while that table was in
// place translate correctly; the reset is for a crash of the earlier run between
// installing a table and resetting its entries. It walks the conntrack hash all netns
// share (2-4 ms each, most of a restart's time with 1,000 sandboxes), so one goroutine does
// them after the servers answer, one at a time.
func (s *Server) queueReset(e *sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, e)
	s.queued++
	if !s.resetting {
		s.resetting = true
		go s.resetPending()
	}
}

func (s *Server) resetPending() {
	for {
		s.mu.Lock()
		if len(s.pending) == 0 || s.closed {
			s.pending, s.resetting = nil, false
			s.mu.Unlock()
			return
		}
		e := s.pending[0]
		s.pending = s.pending[1:]
		s.mu.Unlock()
		if e.unread {
			s.checkNAT(e)
		} else {
			s.resetConntrack(e)
		}
	}
}

// resetConntrack resets the conntrack entries of a sandbox served on a kept NAT table
// after a crash.
func (s *Server) resetConntrack(e *sandbox) {
	// Not after a Stop, which closes e.netns.
	e.natMu.Lock()
	defer e.natMu.Unlock()
	if !s.served(e) {
		return
	}
	if err := e.netns.Do(forgetConntrack); err != nil {
		s.cfg.Log.Warn("reset dns conntrack", "sandbox", e.id, "err", err)
	} else {
		e.clean.Store(true)
	}
}

// served reports whether e is still the server of its sandbox: Stop and Close take it out
// of s.sbs before they stop it.
func (s *Server) served(e *sandbox) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sbs[e.id] == e
}

// checkNAT reads the table of a sandbox that start served on the clean list's word, and
// puts it back, then resets conntrack, if it no longer leads to the sandbox's ports
// (changed by hand while no daemon ran).
func (s *Server) checkNAT(e *sandbox) {
	// Not after a Stop: the table may be a newer server's by now (a rename serves the
	// sandbox again on other ports), which this one must not put its own ports back into.
	e.natMu.Lock()
	defer e.natMu.Unlock()
	if !s.served(e) {
		return
	}
	if ok, err := pinnedAt(e.nsPath, e.nsID); !ok {
		if err != nil {
			s.cfg.Log.Warn("check dns nat", "sandbox", e.id, "err", err)
		}
		return // gone or replaced: a Stop is on its way
	}
	c, err := nftables.New(nftables.WithNetNSFd(e.netns.Fd()), nftables.AsLasting())
	if err != nil {
		s.cfg.Log.Warn("check dns nat", "sandbox", e.id, "err", err)
		return
	}
	defer c.CloseLasting()
	want := e.ports()
	if got, ok := readNAT(c); ok && got == want {
		return
	}
	s.cfg.Log.Warn("dns nat table changed while the daemon was stopped; installing it again", "sandbox", e.id)
	e.clean.Store(false)
	if err := installNAT(c, want.udp, want.tcp); err != nil {
		s.cfg.Log.Warn("check dns nat", "sandbox", e.id, "err", err)
		return
	}
	if err := e.netns.Do(forgetConntrack); err != nil {
		s.cfg.Log.Warn("reset dns conntrack", "sandbox", e.id, "err", err)
		return
	}
	e.clean.Store(true)
}

// start opens the sockets, installs the NAT and starts both servers.
func (s *Server) start(e *sandbox) (err error) {
	if e.netns, err = nsutil.Open(e.nsPath); err != nil {
		return err
	}
	if e.nsID, err = e.netns.ID(); err == nil {
		err = e.listen(e.listed)
	}
	if err != nil {
		e.netns.Close()
		return err
	}
	ports := e.ports()

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.h = s.newHandler(ctx, e.id, e.nsPath)
	e.h.ns = newNSSockets(e.netns, nsIdle)
	e.udpSrv = newUDPServer(e.h, e.udp) // the socket queues datagrams until the reader runs
	e.tcpSrv = s.tcpServer(e.h, e.tcp)
	started := make(chan struct{})
	e.tcpSrv.NotifyStartedFunc = func() { close(started) }
	go func() {
		if err := e.tcpSrv.ActivateAndServe(); err != nil {
			s.cfg.Log.Error("dns server stopped", "sandbox", e.id, "err", err)
		}
	}()
	<-started // ActivateAndServe only fails before NotifyStartedFunc on a bad listener
	switch {
	case e.natKept:
		e.clean.Store(e.listed != natPorts{}) // otherwise Serve queues the reset
	case e.resetErr != nil:
		s.cfg.Log.Warn("reset dns conntrack", "sandbox", e.id, "err", e.resetErr)
	default:
		e.clean.Store(true)
	}
	s.cfg.Log.Info("dns serving", "sandbox", e.id, "udp", ports.udp, "tcp", ports.tcp, "nat_kept", e.natKept)
	return nil
}

// listen opens the UDP and TCP sockets on 127.0.0.11 inside the sandbox's netns and makes
// the NAT table lead to them. A table left by an earlier daemon run (stopped or killed:
// Stop removes it, a dead daemon cannot) is kept as it is when its ports can be bound
// again: no nftables change, and conntrack entries that clients made while the daemon was
// down already carry the right translation. Its ports come from the clean list (clean:
// non-zero after a clean stop, the table is then read later, see checkNAT) or from reading
// the table. Otherwise the sockets take random ports and the table is replaced in one
// batch, as always.
//
// Only sockets are made on a thread inside the netns, the nftables connection among them.
// It is used from this goroutine: a netlink reply that a goroutine locked to its thread
// waits for costs a thread wake-up each (reading a table took ~1 ms that way, ~0.35 ms
// this way).
func (e *sandbox) listen(clean natPorts) error {
	if clean != (natPorts{}) && e.bind(clean, nil) == nil {
		e.natKept, e.unread = true, true
		return nil
	}
	var c *nftables.Conn
	dial := func() (err error) {
		if c, err = nftables.New(nftables.AsLasting()); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		return nil
	}
	closeConn := func() {
		if c != nil {
			c.CloseLasting()
		}
	}
	if e.fresh {
		// Nothing to keep: the sockets and the connection in one trip.
		if err := e.bind(natPorts{}, dial); err != nil {
			closeConn() // made, but the thread could not switch back
			return err
		}
	} else {
		if err := e.netns.Do(dial); err != nil {
			closeConn()
			return err
		}
		if kept, ok := readNAT(c); ok && e.bind(kept, nil) == nil {
			closeConn()
			e.natKept = true
			return nil
		}
		// No table, another one, or a port is taken now: start over on random ones.
		if err := e.bind(natPorts{}, nil); err != nil {
			closeConn()
			return err
		}
	}
	defer closeConn()
	ports := e.ports()
	if err := installNAT(c, ports.udp, ports.tcp); err != nil {
		e.closeSockets()
		return err
	}
	if !e.fresh {
		// Back inside the netns: a client that retried while there was no table (a
		// restart, a rename, an adopted netns) must not keep an untranslated entry. Best
		// effort: the server works without it, only such a client stays unanswered.
		e.resetErr = e.netns.Do(forgetConntrack)
	}
	return nil
}

// bind opens both sockets on 127.0.0.11 in the sandbox's netns, on ports p (zero: random
// ones), and runs also (if not nil) on the same thread. On failure no socket stays open.
func (e *sandbox) bind(p natPorts, also func() error) error {
	err := e.netns.Do(func() (err error) {
		if e.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: serviceIP[:], Port: int(p.udp)}); err != nil {
			return fmt.Errorf("listen udp %s:%d in netns %q: %w", serviceAddr, p.udp, e.nsPath, err)
		}
		if e.tcp, err = net.ListenTCP("tcp", &net.TCPAddr{IP: serviceIP[:], Port: int(p.tcp)}); err != nil {
			return fmt.Errorf("listen tcp %s:%d in netns %q: %w", serviceAddr, p.tcp, e.nsPath, err)
		}
		if also != nil {
			return also()
		}
		return nil
	})
	if err != nil {
		e.closeSockets() // one failed, or made but the thread could not switch back
	}
	return err
}

// ports returns the ports of the open sockets.
func (e *sandbox) ports() natPorts {
	return natPorts{udp: uint16(e.udp.LocalAddr().(*net.UDPAddr).Port), tcp: uint16(e.tcp.Addr().(*net.TCPAddr).Port)}
}

// closeSockets closes whatever listen opened and forgets it.
func (e *sandbox) closeSockets() {
	if e.udp != nil {
		e.udp.Close()
		e.udp = nil
	}
	if e.tcp != nil {
		e.tcp.Close()
		e.tcp = nil
	}
}

// Stop stops the embedded DNS of a sandbox: closes its sockets and removes the NAT table if
// the netns still exists (otherwise it went with the netns). Unknown IDs are ignored.
func (s *Server) Stop(sandboxID string) {
	s.mu.Lock()
	e, ok := s.sbs[sandboxID]
	delete(s.sbs, sandboxID)
	s.mu.Unlock()
	if ok {
		s.stop(e, false)
	}
}

// stop closes e's sockets and servers, and removes its NAT table unless keepNAT.
func (s *Server) stop(e *sandbox, keepNAT bool) {
	<-e.ready
	if e.err != nil {
		return
	}
	// Stop and Close took e out of s.sbs before this, so a checkNAT not yet under way
	// skips e; one under way is waited for, and none runs while the table is removed.
	e.natMu.Lock()
	defer e.natMu.Unlock()
	defer e.netns.Close()
	// e.netns holds the netns: as long as it lives, no other netns can have its identity,
	// so the check in pinnedAt cannot be fooled by a new sandbox pinned at the same path
	// with a recycled inode number.
	pinned := false
	if !keepNAT {
		var err error
		if pinned, err = pinnedAt(e.nsPath, e.nsID); err != nil {
			s.cfg.Log.Warn("remove dns nat", "sandbox", e.id, "err", err)
		}
	}
	e.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	e.udpSrv.stop(stopWait) // closes the socket at once, then waits for handlers
	_ = e.tcpSrv.ShutdownContext(ctx)
	e.h.close()
	if keepNAT {
		s.cfg.Log.Info("dns stopped", "sandbox", e.id, "nat", "kept")
		return
	}
	if pinned {
		// Otherwise the netns is gone from the path, and its table goes with it.
		if err := deleteNAT(e.netns.Fd()); err != nil {
			s.cfg.Log.Warn("remove dns nat", "sandbox", e.id, "err", err)
		}
	}
	s.cfg.Log.Info("dns stopped", "sandbox", e.id)
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
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range sbs {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(e, true) }()
	}
	wg.Wait()
	s.relay.close()
	s.writeCleanFile(sbs)
}

// writeCleanFile lists, one "ID udpPort tcpPort" line each, the sandboxes whose kept NAT
// tables are clean (see Config.CleanFile). A failure only costs the next start its resets.
func (s *Server) writeCleanFile(sbs map[string]*sandbox) {
	if s.cfg.CleanFile == "" {
		return
	}
	var b []byte
	for id, e := range sbs {
		if e.err == nil && e.clean.Load() {
			p := e.ports()
			b = fmt.Appendf(b, "%s %d %d\n", id, p.udp, p.tcp)
		}
	}
	if err := os.WriteFile(s.cfg.CleanFile, b, 0o600); err != nil {
		s.cfg.Log.Warn("record clean dns nat tables", "err", err)
	}
}

// readCleanFile reads and removes the list writeCleanFile left: it holds for the tables
// as the last run left them, and only until this run changes or crashes. A line it cannot
// read is left out: that table is read and reset as after a crash.
func readCleanFile(path string, log *slog.Logger) map[string]natPorts {
	clean := map[string]natPorts{}
	if path == "" {
		return clean
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return clean // none: the first start, or the last run did not stop cleanly
	}
	if err := os.Remove(path); err != nil {
		log.Warn("remove clean dns nat list; kept tables are reset instead", "err", err)
		return clean
	}
	for line := range strings.Lines(string(b)) {
		var id string
		var p natPorts
		if n, _ := fmt.Sscanf(line, "%s %d %d", &id, &p.udp, &p.tcp); n == 3 && p.udp != 0 && p.tcp != 0 {
			clean[id] = p
		}
	}
	return clean
}

// countRejects is miekg's DefaultMsgAcceptFunc (for TCP) that counts what it rejects.
func (s *Server) countRejects(dh dns.Header) dns.MsgAcceptAction {
	switch a := dns.DefaultMsgAcceptFunc(dh); a {
	case dns.MsgAccept:
		return a
	case dns.MsgIgnore:
		s.metrics.dropped()
		return a
	default:
		rc := dns.RcodeFormatError
		if a == dns.MsgRejectNotImplemented {
			rc = dns.RcodeNotImplemented
		}
		s.metrics.answered(0, rc, srcMalformed, 0)
		return a
	}
}

// listeners returns the sockets of a served sandbox, for tests that check their netns.
func (s *Server) listeners(sandboxID string) (*net.UDPConn, *net.TCPListener) {
	s.mu.Lock()
	e := s.sbs[sandboxID]
	s.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	<-e.ready
	return e.udp, e.tcp
}
