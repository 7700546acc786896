package dnsd

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// epoller is the relay loop's epoll instance and the eventfd that wakes it. The loop
// waits for it as a parked goroutine, not as a thread blocked in epoll_wait (which would
// cost a thread switch per wake-up): an epoll fd is itself pollable, so with O_NONBLOCK
// os.NewFile adds it to Go's poller, and the loop reads it through a RawConn.
type epoller struct {
	fd    int
	file  *os.File        // fd, in Go's poller
	raw   syscall.RawConn // file's
	evfd  int             // eventfd in the set under wakeData
	waits atomic.Uint64   // calls of wait (tests: a loop with nothing to do is parked)

	// The epoll_wait in progress, for waitFn: kept here so that the function passed to
	// the RawConn is made once, not a closure per wait.
	events []unix.EpollEvent
	n      int
	err    error
	waitFn func(fd uintptr) bool
}

// wakeData marks the eventfd in epoll events (entries use their index, from 0).
const wakeData = -1

// epollBatch is how many events one wait takes at most.
const epollBatch = 128

func newEpoller() (*epoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p := &epoller{fd: fd, file: os.NewFile(uintptr(fd), "dnsd-relay-epoll"), evfd: -1,
		events: make([]unix.EpollEvent, epollBatch)}
	p.waitFn = p.waitOnce
	if p.raw, err = p.file.SyscallConn(); err != nil {
		p.close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if p.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		p.close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeData}
	if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, p.evfd, &ev); err != nil {
		p.close()
		return nil, fmt.Errorf("epoll add: %w", err)
	}
	return p, nil
}

// add registers an attempt's socket under the entry index idx and attempt seq.
func (p *epoller) add(fd int, idx, seq int32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: idx, Pad: seq}
	if err := unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// wake makes the waiting loop return from wait.
func (p *epoller) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:])
}

// setDeadline makes wait return os.ErrDeadlineExceeded at t (zero: never).
func (p *epoller) setDeadline(t time.Time) { _ = p.file.SetReadDeadline(t) }

// wait parks until events are ready and returns them, wake-ups consumed. It fails with
// os.ErrDeadlineExceeded at the deadline, or with what broke the epoll instance.
func (p *epoller) wait() ([]unix.EpollEvent, error) {
	p.waits.Add(1)
	p.n, p.err = 0, nil
	if err := p.raw.Read(p.waitFn); err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, fmt.Errorf("epoll_wait: %w", p.err)
	}
	events := p.events[:p.n]
	for _, ev := range events {
		if ev.Fd == wakeData {
			var b [8]byte
			_, _ = unix.Read(p.evfd, b[:])
		}
	}
	return events, nil
}

// waitOnce takes what is ready without blocking; false (nothing) parks the loop until
// Go's poller sees the epoll fd readable. EINTR is retried at once: it means a signal,
// not a busy instance, and parking then could miss events already reported.
func (p *epoller) waitOnce(fd uintptr) bool {
	for {
		n, err := unix.EpollWait(int(fd), p.events, 0)
		if err == unix.EINTR {
			continue
		}
		p.n, p.err = max(n, 0), err
		return n != 0 || err != nil
	}
}

// close closes the epoll instance (which drops every socket from it) and the eventfd.
func (p *epoller) close() {
	p.file.Close()
	if p.evfd >= 0 {
		unix.Close(p.evfd)
	}
}
