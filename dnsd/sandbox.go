package dnsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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
	e.tcpSrv = s.startTCP(e, s.tcpServerSlots(e.h, e.tcp, slots))
	if e.v6 {
		e.udpSrv6 = newUDPServer(e.h, e.udp6)
		e.tcpSrv6 = s.startTCP(e, s.tcpServerSlots(e.h, e.tcp6, slots))
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

// bindTries bounds the random port pairs bind tries when the IPv6 sockets find a port of
// the IPv4 ones taken (by a process in the sandbox: the kernel picked it free for
// 127.0.0.11 only). One in a thousand ports taken makes a retry rare; the bound only stops
// a netns whose every port is taken from looping.
const bindTries = 8

// bind opens the sockets on 127.0.0.11 (and, if e.v6, on serviceAddr6) in the sandbox's
// netns, on ports p (zero: random ones, the same for both addresses), and runs also (if
// not nil) on the same thread. On failure no socket stays open.
func (e *sandbox) bind(p natPorts, also func() error) error {
	err := e.netns.Do(func() (err error) {
		e.addServiceAddr6()
		for try := 1; ; try++ {
			err = e.bindOnce(p)
			if err == nil || p != (natPorts{}) || !errors.Is(err, unix.EADDRINUSE) || try == bindTries {
				break
			}
		}
		if err != nil {
			return err
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

// bindOnce is one try of bind, on the calling thread, which is in the sandbox's netns.
// An IPv6 socket that fails for another reason than a taken port turns the IPv6 listener
// off, as when the address could not be added.
func (e *sandbox) bindOnce(p natPorts) (err error) {
	defer func() {
		if err != nil {
			e.closeSockets()
		}
	}()
	if e.udp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: serviceIP[:], Port: int(p.udp)}); err != nil {
		return fmt.Errorf("listen udp %s:%d in netns %q: %w", serviceAddr, p.udp, e.nsPath, err)
	}
	if e.tcp, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: serviceIP[:], Port: int(p.tcp)}); err != nil {
		return fmt.Errorf("listen tcp %s:%d in netns %q: %w", serviceAddr, p.tcp, e.nsPath, err)
	}
	if !e.v6 {
		return nil
	}
	p = e.ports()
	if e.udp6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: serviceIP6[:], Port: int(p.udp)}); err == nil {
		e.tcp6, err = net.ListenTCP("tcp6", &net.TCPAddr{IP: serviceIP6[:], Port: int(p.tcp)})
	}
	if err != nil && !errors.Is(err, unix.EADDRINUSE) {
		e.v6, e.v6Off = false, err
		e.closeSockets6()
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on [%s]:%d/udp, %d/tcp in netns %q: %w", serviceAddr6, p.udp, p.tcp, e.nsPath, err)
	}
	return nil
}

// loopback is the netns's lo: LOOPBACK_IFINDEX, 1 in every netns.
var loopback = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}}

// serviceAddr6Net is serviceAddr6 as the /128 on lo.
var serviceAddr6Net = &net.IPNet{IP: net.IP(serviceIP6[:]), Mask: net.CIDRMask(128, 128)}

// addServiceAddr6 adds serviceAddr6/128 to lo, on the calling thread (in the sandbox's
// netns), once per listen, and sets e.v6: an address already there (left by an earlier
// run, or the same run's previous serve) is fine. NODAD makes it usable at once (a
// tentative address cannot be bound). A netns with IPv6 off on lo (disable_ipv6 = 1:
// EACCES) or in the kernel refuses it, and gets the IPv4 listener alone.
func (e *sandbox) addServiceAddr6() {
	if e.v6Tried {
		return
	}
	e.v6Tried = true
	err := netlink.AddrAdd(loopback, &netlink.Addr{IPNet: serviceAddr6Net, Flags: unix.IFA_F_NODAD})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		e.v6, e.v6Off = false, fmt.Errorf("add %s to lo: %w", serviceAddr6, err)
		return
	}
	e.v6 = true
}

// delServiceAddr6 removes serviceAddr6 from lo, on the calling thread (in the sandbox's
// netns); an address already gone is fine.
func delServiceAddr6() error {
	err := netlink.AddrDel(loopback, &netlink.Addr{IPNet: serviceAddr6Net})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove %s from lo: %w", serviceAddr6, err)
	}
	return nil
}

// forgetConntrack is forgetConntrack for e's addresses, on a thread in its netns.
func (e *sandbox) forgetConntrack() error { return forgetConntrack(e.v6) }

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
	e.closeSockets6()
}

// closeSockets6 closes the IPv6 sockets listen opened and forgets them.
func (e *sandbox) closeSockets6() {
	if e.udp6 != nil {
		e.udp6.Close()
		e.udp6 = nil
	}
	if e.tcp6 != nil {
		e.tcp6.Close()
		e.tcp6 = nil
	}
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
