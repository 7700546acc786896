package dnsd

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/google/nftables"
)

// NAT tables kept from an earlier daemon run: the clean list that a clean stop leaves
// (Config.CleanFile), and the background work on a table that a start kept (settle).

// natPorts are the ports a sandbox's NAT tables lead 127.0.0.11:53 and
// [fd62:6572:7468::11]:53 to: the IPv4 and IPv6 sockets share them, so one pair says
// where both tables lead.
type natPorts struct{ udp, tcp uint16 }

// queueSettle schedules the background work of a sandbox served on the NAT table of an
// earlier run: reading the table, if the clean list was taken at its word (see
// Config.CleanFile), or else the conntrack reset. Entries made while that table was in
// place translate correctly; the reset is for a crash of the earlier run between
// installing a table and resetting its entries. It walks the conntrack hash all netns
// share (milliseconds each, most of a restart's time with 1,000 sandboxes), so one
// goroutine does them after the servers answer, one at a time.
func (s *Server) queueSettle(e *sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unsettled = append(s.unsettled, e)
	s.queued++
	if !s.settling {
		s.settling = true
		go s.settleAll()
	}
}

// settleAll works through s.unsettled until it is empty or the server closes.
func (s *Server) settleAll() {
	for {
		s.mu.Lock()
		if len(s.unsettled) == 0 || s.closed {
			s.unsettled, s.settling = nil, false
			s.mu.Unlock()
			return
		}
		e := s.unsettled[0]
		s.unsettled = s.unsettled[1:]
		s.mu.Unlock()
		s.settle(e)
	}
}

// settle does the background work e.nat calls for, unless e was stopped meanwhile: stop
// closes e.netns, and the table may be a newer server's by now (a rename serves the
// sandbox again on other ports), which this one must not put its own ports back into.
func (s *Server) settle(e *sandbox) {
	e.natMu.Lock()
	defer e.natMu.Unlock()
	if !s.served(e) {
		return
	}
	switch e.nat {
	case natListed:
		e.nat = s.checkNAT(e)
	case natKept:
		e.nat = natReset
		if err := e.netns.Do(e.forgetConntrack); err != nil {
			s.cfg.Log.Warn("reset dns conntrack", "sandbox", e.id, "err", err)
			e.nat = natBroken
		}
	}
}

// served reports whether e is serving: Stop and Close take it out of s.sbs, and mark it
// stopping, before they stop it.
func (s *Server) served(e *sandbox) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.phase == phaseServing
}

// checkNAT reads the tables of a sandbox that start served on the clean list's word, and
// puts them back, then resets conntrack, if they no longer lead to the sandbox's ports
// (changed by hand while no daemon ran, or an IPv4 table alone, left by a daemon from
// before the IPv6 listener). It returns e's new NAT state. e.natMu is held.
func (s *Server) checkNAT(e *sandbox) natState {
	if ok, err := pinnedAt(e.nsPath, e.nsID); !ok {
		if err != nil {
			s.cfg.Log.Warn("check dns nat", "sandbox", e.id, "err", err)
		}
		return e.nat // gone or replaced: a Stop is on its way
	}
	c, err := nftables.New(nftables.WithNetNSFd(e.netns.Fd()), nftables.AsLasting())
	if err != nil {
		s.cfg.Log.Warn("check dns nat", "sandbox", e.id, "err", err)
		return e.nat
	}
	defer c.CloseLasting()
	want := e.ports()
	if got, ok := readNAT(c, e.v6); ok && got == want {
		return natChecked
	}
	s.cfg.Log.Warn("dns nat tables changed while the daemon was stopped; installing them again", "sandbox", e.id)
	if err := installNAT(c, want.udp, want.tcp, e.v6); err != nil {
		s.cfg.Log.Warn("check dns nat", "sandbox", e.id, "err", err)
		return natBroken
	}
	if err := e.netns.Do(e.forgetConntrack); err != nil {
		s.cfg.Log.Warn("reset dns conntrack", "sandbox", e.id, "err", err)
		return natBroken
	}
	return natChecked
}

// writeCleanFile lists, one "ID udpPort tcpPort" line each, the sandboxes whose kept NAT
// tables are clean (see Config.CleanFile). A failure only costs the next start its resets.
func (s *Server) writeCleanFile(clean map[string]natPorts) {
	if s.cfg.CleanFile == "" {
		return
	}
	var b []byte
	for id, p := range clean {
		b = fmt.Appendf(b, "%s %d %d\n", id, p.udp, p.tcp)
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
