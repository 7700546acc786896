package dnsd

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/google/nftables"
	"github.com/miekg/dns"

	"berth/internal/nsutil"
	"berth/resolver"
)

// One sandbox's embedded DNS from Serve to Stop: its netns, its sockets (UDP and TCP on
// 127.0.0.11, and on fd62:6572:7468::11 unless IPv6 is off in the netns), the NAT tables
// that lead port 53 of those addresses to them, its servers, and where each of those stands.

// phase is where a sandbox's server is in its life. Every move is made under Server.mu:
//
//	starting ──► serving ──► stopping ──► stopped
//	    │                        ▲   │
//	    ├────────────────────────┘   │   (Stop or Close while it starts)
//	    └──► failed ◄────────────────┘   (the start it waited for failed)
type phase uint8

const (
	phaseStarting phase = iota // in Server.sbs; start under way, ready still open
	phaseServing               // in Server.sbs; both servers read their sockets
	phaseFailed                // start failed (err says why); out of Server.sbs
	phaseStopping              // taken out of Server.sbs by Stop or Close; stop under way
	phaseStopped               // sockets, servers and netns handle closed; table removed or kept
)

// phaseMoves lists the phases each phase may move to.
var phaseMoves = [...][]phase{
	phaseStarting: {phaseServing, phaseFailed, phaseStopping},
	phaseServing:  {phaseStopping},
	phaseStopping: {phaseStopped, phaseFailed},
}

// natState is what a served sandbox knows of its NAT table, and of conntrack entries made
// before the table led to its sockets: what is left to do in the background (settle) and
// whether Close may put the sandbox on the clean list (Config.CleanFile). start sets it;
// after that only settle changes it, holding natMu:
//
//	installed, unreset                   (this run installed the table)
//	listed ──checkNAT──► checked | broken (kept on the clean list's word)
//	kept ────reset─────► reset | broken   (kept after reading it: the last run crashed)
type natState uint8

const (
	natInstalled natState = iota // this run installed the table and reset conntrack
	natUnreset                   // this run installed it; the conntrack reset failed (logged)
	natListed                    // kept on the clean list's word; checkNAT reads it later
	natChecked                   // listed, and found as it should be (or put back) by checkNAT
	natKept                      // kept after reading it; its conntrack reset is queued
	natReset                     // kept, and its conntrack reset
	natBroken                    // kept; the check or the reset failed (logged)
)

var natNames = [...]string{"installed", "unreset", "listed", "checked", "kept", "reset", "broken"}

func (n natState) String() string { return natNames[n] }

// clean reports whether no conntrack entry made before the table needs a reset.
func (n natState) clean() bool {
	return n == natInstalled || n == natListed || n == natChecked || n == natReset
}

// kept reports whether the table is an earlier run's, kept as it was.
func (n natState) kept() bool { return n >= natListed && n != natUnreset }

// unsettled reports whether background work on the table is due (see Server.settle).
func (n natState) unsettled() bool { return n == natListed || n == natKept }

// sandbox is the serving state of one sandbox.
type sandbox struct {
	id     string
	nsPath string
	ready  chan struct{} // closed when start finished; err then tells how
	err    error
	phase  phase // guarded by Server.mu

	netns  *nsutil.Handle   // the netns the sockets are in (nsPath may name another later); good until stop
	nsID   nsutil.ID        // netns's
	udp    *net.UDPConn     // good until stop
	tcp    *net.TCPListener // good until stop
	h      *handler
	udpSrv *udpServer
	tcpSrv *dns.Server

	// The IPv6 listener: sockets on serviceAddr6 on the same ports as udp and tcp (so one
	// natPorts says where both tables lead), with servers of their own over the same
	// handler and TCP slots. Set by listen; v6 false (v6Off says why) leaves them nil.
	v6      bool
	v6Off   error
	v6Tried bool // listen added the address, or failed to (v6, v6Off)
	udp6    *net.UDPConn
	tcp6    *net.TCPListener
	udpSrv6 *udpServer
	tcpSrv6 *dns.Server
	cancel  context.CancelFunc // cancels in-flight forwards

	natMu sync.Mutex // held by settle and by stop; guards following after start
	nat   natState
}

// moveLocked moves e to phase p if e's phase allows it, and reports whether it did.
// Server.mu is held.
func (e *sandbox) moveLocked(p phase) bool {
	if int(e.phase) >= len(phaseMoves) {
		return false
	}
	for _, next := range phaseMoves[e.phase] {
		if next == p {
			e.phase = p
			return true
		}
	}
	return false
}

// start opens e's netns and sockets, installs the NAT and starts both servers. fresh is a
// netns made moments ago (ServeNew); listed are the ports of its table on the clean list,
// or zero.
func (s *Server) start(e *sandbox, fresh bool, listed natPorts) (err error) {
	if e.netns, err = nsutil.Open(e.nsPath); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			e.netns.Close()
		}
	}()
	if e.nsID, err = e.netns.ID(); err != nil {
		return err
	}
	resetErr, err := e.listen(fresh, listed)
	if err != nil {
		return err
	}
	ports := e.ports()

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.h = s.newHandler(ctx, e.id, e.nsPath)
	e.h.ns = newNSSockets(e.netns, nsIdle)
	e.udpSrv = newUDPServer(e.h, e.udp) // the socket queues datagrams until the reader runs
	// One set of connection slots for both TCP listeners: the limit is the sandbox's.
	slots := s.tcpSlots()
	e.tcpSrv = s.startTCP(e, s.tcpServer(e.h, e.tcp, slots))
	if e.v6 {
		e.udpSrv6 = newUDPServer(e.h, e.udp6)
		e.tcpSrv6 = s.startTCP(e, s.tcpServer(e.h, e.tcp6, slots))
	}
	if resetErr != nil {
		s.cfg.Log.Warn("reset dns conntrack", "sandbox", e.id, "err", resetErr)
	}
	if !e.v6 {
		// IPv6 is off in the netns (disable_ipv6 on lo, or no IPv6 at all): 127.0.0.11
		// serves alone. An IPv6-only sandbox's resolv.conf names serviceAddr6 regardless,
		// which is then unanswered: say so.
		s.cfg.Log.Info("dns serving ipv4 only: ipv6 is off in the sandbox netns", "sandbox", e.id,
			"udp", ports.udp, "tcp", ports.tcp, "nat_kept", e.nat.kept(), "reason", e.v6Off,
			"ipv6_only_sandbox", resolver.Nameserver(s.cfg.Store.Snapshot(), e.id).Is6())
		return nil
	}
	s.cfg.Log.Info("dns serving", "sandbox", e.id, "udp", ports.udp, "tcp", ports.tcp, "ipv6", true, "nat_kept", e.nat.kept())
	return nil
}

// startTCP starts srv and returns it once it accepts.
func (s *Server) startTCP(e *sandbox, srv *dns.Server) *dns.Server {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() {
		if err := srv.ActivateAndServe(); err != nil {
			s.cfg.Log.Error("dns server stopped", "sandbox", e.id, "err", err)
		}
	}()
	<-started // ActivateAndServe only fails before NotifyStartedFunc on a bad listener
	return srv
}

// listen opens the UDP and TCP sockets on 127.0.0.11 inside the sandbox's netns (and on
// serviceAddr6, with the same ports, after adding that address to lo: see addServiceAddr6)
// and makes the NAT tables lead to them, and sets e.nat and e.v6. Where this says "the
// table", read "both tables" when e.v6: they are installed, read and kept together. A
// table left by an earlier daemon run (stopped or killed: Stop removes it, a dead daemon
// cannot) is kept as it is when its
// ports can be bound again: no nftables change, and conntrack entries that clients made
// while the daemon was down already carry the right translation. Its ports come from the
// clean list (listed: non-zero after a clean stop, the table is then read later, see
// checkNAT) or from reading the table. Otherwise the sockets take random ports and the
// table is replaced in one batch, as always. resetErr is a failed conntrack reset after
// installing the table, which the server works without.
//
// Only sockets are made on a thread inside the netns, the nftables connection among them.
// It is used from this goroutine: a netlink reply that a goroutine locked to its thread
// waits for costs a thread wake-up each.
func (e *sandbox) listen(fresh bool, listed natPorts) (resetErr, err error) {
	if listed != (natPorts{}) && e.bind(listed, nil) == nil {
		e.nat = natListed
		return nil, nil
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
	if fresh {
		// Nothing to keep: the sockets and the connection in one trip.
		if err := e.bind(natPorts{}, dial); err != nil {
			closeConn() // made, but the thread could not switch back
			return nil, err
		}
	} else {
		if err := e.netns.Do(func() error { e.addServiceAddr6(); return dial() }); err != nil {
			closeConn()
			return nil, err
		}
		if kept, ok := readNAT(c, e.v6); ok && e.bind(kept, nil) == nil {
			closeConn()
			e.nat = natKept
			if listed != (natPorts{}) {
				// The listed ports did not bind, and the table, read now, leads to
				// others that do (edited while no daemon ran): the list still vouches
				// for conntrack.
				e.nat = natChecked
			}
			return nil, nil
		}
		// No table, another one, or a port is taken now: start over on random ones.
		if err := e.bind(natPorts{}, nil); err != nil {
			closeConn()
			return nil, err
		}
	}
	defer closeConn()
	ports := e.ports()
	if err := installNAT(c, ports.udp, ports.tcp, e.v6); err != nil {
		e.closeSockets()
		return nil, err
	}
	e.nat = natInstalled
	if !fresh {
		// Back inside the netns: a client that retried while there was no table (a
		// restart, a rename, an adopted netns) must not keep an untranslated entry. Best
		// effort: the server works without it, only such a client stays unanswered.
		if resetErr = e.netns.Do(e.forgetConntrack); resetErr != nil {
			e.nat = natUnreset
		}
	}
	return resetErr, nil
}

// stop closes e's sockets, servers and netns handle, and removes its NAT tables (and
// serviceAddr6 from lo) unless keepNAT. e is stopping: Stop or Close took it out of s.sbs. It returns the ports of a
// table it kept that needs no conntrack reset (for the clean list), or zero.
func (s *Server) stop(e *sandbox, keepNAT bool) (clean natPorts) {
	<-e.ready
	s.mu.Lock()
	failed := e.phase == phaseFailed
	s.mu.Unlock()
	if failed {
		return natPorts{}
	}
	defer func() {
		s.mu.Lock()
		e.moveLocked(phaseStopped)
		s.mu.Unlock()
	}()
	// e is out of s.sbs, so a settle not yet under way skips it; one under way is waited
	// for, and none runs while the table is removed or the handle closed.
	e.natMu.Lock()
	defer e.natMu.Unlock()
	defer e.netns.Close()
	// e.netns holds the netns: as long as it lives, no other netns can have its identity,
	// so pinnedAt cannot be fooled by a new sandbox pinned at the same path with a
	// recycled inode number.
	pinned := false
	if !keepNAT {
		var err error
		if pinned, err = pinnedAt(e.nsPath, e.nsID); err != nil {
			s.cfg.Log.Warn("remove dns nat", "sandbox", e.id, "err", err)
		}
	}
	ports := e.ports()
	e.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	e.udpSrv.stop(stopWait) // closes the socket at once, then waits for handlers
	if e.udpSrv6 != nil {
		e.udpSrv6.stop(stopWait)
	}
	_ = e.tcpSrv.ShutdownContext(ctx)
	if e.tcpSrv6 != nil {
		_ = e.tcpSrv6.ShutdownContext(ctx)
	}
	e.h.close()
	if keepNAT {
		s.cfg.Log.Info("dns stopped", "sandbox", e.id, "nat", "kept")
		if e.nat.clean() {
			return ports
		}
		return natPorts{}
	}
	if pinned {
		// Otherwise the netns is gone from the path, and its table goes with it.
		if err := deleteNAT(e.netns.Fd()); err != nil {
			s.cfg.Log.Warn("remove dns nat", "sandbox", e.id, "err", err)
		}
		if e.v6 {
			// After the tables: no moment with a table leading to an address not there.
			if err := e.netns.Do(delServiceAddr6); err != nil {
				s.cfg.Log.Warn("remove dns address", "sandbox", e.id, "err", err)
			}
		}
	}
	s.cfg.Log.Info("dns stopped", "sandbox", e.id)
	return natPorts{}
}
