package dnsd

import (
	"container/list"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Client TCP connection slots of one sandbox's server.
//
// A sandbox's server keeps at most MaxTCPConns client connections. A connection with no
// query under way (waiting for one, or in the middle of reading one) is idle; one whose
// query has been read and is being answered (forwarded, an AXFR relayed) is busy. Idle
// connections are closed after TCPIdleTimeout, and when a new connection finds every slot
// taken, the connection idle the longest is closed to make room (RFC 7766 6.2.3 lets a
// server close idle connections; clients then reconnect). So holding connections open
// gains a client nothing: a new connection's query is always read and answered.
//
// What "source" means for the limit: the sandbox. Each sandbox has a server of its own,
// with its own slots, so no sandbox can use up another's. Inside one sandbox the source
// address says nothing: every client connects to 127.0.0.11 from 127.0.0.1 (the kernel's
// choice on lo), and any process there may bind any other address of 127.0.0.0/8 (all of
// it is local) or any port. A limit per address would lump every well-behaved client into
// one bucket and stop no client set on hogging, which just binds more addresses. What a
// client cannot choose is how long its queries take, so fairness inside a sandbox is per
// query: a busy connection keeps its slot only until its query is answered, and when a new
// connection is waiting for a slot (all busy), the next connection to finish a query gives
// its slot to the new one instead of reading another query. A client that keeps every slot
// busy thus loses one to each newcomer at its next answer: at most ForwardDeadline (plus
// tcpWriteTimeout to write the answer) later, and forwarded queries are also bounded by
// MaxInflight.

// errSlotTaken ends a connection whose slot went to a newer one (see tcpSlots).
var errSlotTaken = errors.New("tcp connection slot given to a newer connection")

// tcpSlots are the client TCP connection slots of one sandbox's server.
type tcpSlots struct {
	max   int           // slots
	wait  time.Duration // how long a new connection waits for a busy one to finish
	freed chan struct{} // buffered (1): a connection closed, so a slot may be free
	m     *Metrics      // always non-nil

	mu       sync.Mutex // guards following
	open     int        // connections holding a slot
	idle     list.List  // of *slotConn with no query under way, longest idle first
	waiting  bool       // the accept loop holds a new connection until a busy one yields
	yielding int        // connections that gave their slot up for it and are closing
}

func newTCPSlots(max int, wait time.Duration, m *Metrics) *tcpSlots {
	return &tcpSlots{max: max, wait: wait, freed: make(chan struct{}, 1), m: m}
}

// signal wakes a waiting accept loop.
func (s *tcpSlots) signal() {
	select {
	case s.freed <- struct{}{}:
	default:
	}
}

// admit gives c a slot: a free one, else the one of the connection idle the longest, which
// is closed, else the first one a busy connection gives up within s.wait. It returns nil
// when there is none by then, or when done is closed.
func (s *tcpSlots) admit(c net.Conn, done <-chan struct{}) *slotConn {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.open < s.max {
			s.open++
			s.waiting = false
			s.mu.Unlock()
			return &slotConn{Conn: c, slots: s}
		}
		if e := s.idle.Front(); e != nil {
			victim := s.idle.Remove(e).(*slotConn)
			victim.elem = nil
			victim.gone = true // its slot passes to c: its Close frees none
			s.waiting = false
			s.mu.Unlock()
			victim.Conn.Close() // its reader, in miekg's goroutine, fails and ends it
			s.m.tcpClose(tcpEvicted)
			return &slotConn{Conn: c, slots: s}
		}
		// A connection that already gave its slot up frees it when it closes: wait for
		// that rather than asking another one.
		s.waiting = s.yielding == 0
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(s.wait)
		}
		select {
		case <-s.freed:
			continue
		case <-timer.C:
			s.m.tcpClose(tcpNoSlot)
		case <-done:
		}
		s.mu.Lock()
		s.waiting = false
		s.mu.Unlock()
		return nil
	}
}

// slotConn is an admitted client connection. miekg reads its queries through slotReader,
// which tells the slots when it is idle and when busy.
type slotConn struct {
	net.Conn
	slots *tcpSlots
	once  sync.Once

	// guarded by slots.mu
	elem    *list.Element // in slots.idle while idle, or nil
	gone    bool          // its slot was given away: a closed connection that frees nothing
	yielded bool          // it gives its slot up to a waiting connection when it closes
}

// idle marks c as waiting for its next query. It reports false if c must end instead: its
// slot was taken by a newer connection, or one is waiting for a slot (c gives up its own).
func (c *slotConn) idle() bool {
	s := c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone {
		return false
	}
	if s.waiting {
		// One busy connection yields per waiting one; its Close frees the slot.
		s.waiting = false
		s.yielding++
		c.yielded = true
		s.m.tcpClose(tcpYielded)
		return false
	}
	c.elem = s.idle.PushBack(c)
	return true
}

// busy marks c as answering the query it has just read. It reports false if c was closed
// to make room meanwhile: the query is dropped (its answer could not be written).
func (c *slotConn) busy() bool {
	s := c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone {
		return false
	}
	if c.elem != nil {
		s.idle.Remove(c.elem)
		c.elem = nil
	}
	return true
}

// tcpWriteTimeout bounds writing one answer: a client that stops reading (pipelined
// queries, answers never read, until the socket buffers fill) would otherwise keep its
// connection busy, and its slot taken, for ever. miekg documents the same 2 s for its
// WriteTimeout, which it does not apply.
const tcpWriteTimeout = 2 * time.Second

// Write writes one answer (miekg writes each whole, length prefix included).
func (c *slotConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Close closes the connection and frees its slot, once.
func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		s := c.slots
		s.mu.Lock()
		if c.elem != nil {
			s.idle.Remove(c.elem)
			c.elem = nil
		}
		if c.yielded {
			c.yielded = false
			s.yielding--
		}
		if !c.gone {
			c.gone = true
			s.open--
		}
		s.mu.Unlock()
		s.signal()
	})
	return err
}

// slotListener admits accepted connections into its slots, closing those that get none.
type slotListener struct {
	*net.TCPListener
	slots     *tcpSlots
	done      chan struct{} // closed by Close: a waiting Accept gives up
	closeOnce sync.Once
}

func newSlotListener(l *net.TCPListener, slots *tcpSlots) *slotListener {
	return &slotListener{TCPListener: l, slots: slots, done: make(chan struct{})}
}

// Accept returns the next connection that gets a slot. While it waits for a busy
// connection to give one up, further connections wait in the kernel's accept queue.
func (l *slotListener) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPListener.Accept()
		if err != nil {
			return nil, err
		}
		if sc := l.slots.admit(c, l.done); sc != nil {
			return sc, nil
		}
		c.Close()
	}
}

// Close closes the listener; a waiting Accept returns at once (miekg's Shutdown waits
// for it).
func (l *slotListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.TCPListener.Close()
}

// slotReader reads TCP queries through miekg's reader and marks the connection idle while
// it waits for (or reads) a query and busy from when a whole query is read until miekg
// asks for the next one, after it has written the answer.
type slotReader struct{ dns.Reader }

// ReadTCP implements dns.Reader.
func (r slotReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	c, ok := conn.(*slotConn)
	if !ok {
		return r.Reader.ReadTCP(conn, timeout)
	}
	if !c.idle() {
		return nil, errSlotTaken
	}
	m, err := r.Reader.ReadTCP(conn, timeout)
	if err != nil {
		return nil, err
	}
	if !c.busy() {
		return nil, errSlotTaken
	}
	return m, nil
}

// tcpSlots returns the connection slots of one sandbox.
func (s *Server) tcpSlots() *tcpSlots {
	return newTCPSlots(s.cfg.MaxTCPConns, s.cfg.TCPIdleTimeout, s.metrics)
}

// tcpServer returns a TCP server of one sandbox, answering with h on l through the
// sandbox's slots, which its listeners on 127.0.0.11 and fd62:6572:7468::11 share. A
// connection waits for its first query as long as between queries (miekg would give it
// its ReadTimeout, 2 s): both are idle time.
func (s *Server) tcpServer(h dns.Handler, l *net.TCPListener, slots *tcpSlots) *dns.Server {
	return &dns.Server{
		Listener:       newSlotListener(l, slots),
		Handler:        h,
		ReadTimeout:    s.cfg.TCPIdleTimeout,
		IdleTimeout:    func() time.Duration { return s.cfg.TCPIdleTimeout },
		DecorateReader: func(r dns.Reader) dns.Reader { return slotReader{r} },
		MsgAcceptFunc:  s.countRejects,
	}
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
