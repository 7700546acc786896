// Package nsutil runs code inside another network namespace and opens sockets there.
//
// A thread's netns is switched with setns(2) on a fresh goroutine locked to its OS thread.
// The thread is handed back to the Go scheduler only after it is back in its original
// netns; if that fails the thread is left locked and dies with its goroutine, so no other
// goroutine ever runs in the wrong namespace. Sockets keep the netns they were created in,
// so a listener made inside stays there after the switch back. A Worker keeps one thread
// inside a netns for a caller that enters it often; that thread never switches back, it
// exits. This package holds no state of its own; no other berth package calls setns(2)
// on a thread that goes back to the scheduler.
package nsutil

import (
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a new OS thread that has joined the netns at nsPath, and returns fn's
// error: Open, Handle.Do and Close in one call, for a single trip. An empty nsPath runs fn
// in the current netns.
func Do(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	h, err := Open(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(fn)
}

func doIn(name string, target netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		errc <- doLocked(name, target, fn)
	}()
	return <-errc
}

// doLocked is the body of Do's goroutine. It unlocks the OS thread only when the thread is
// known to be back in its original netns.
func doLocked(nsPath string, target netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		// setns failed, so the thread is still where it was.
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", nsPath, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Keep the thread locked: it exits with this goroutine instead of being reused.
		if fnErr != nil {
			return fmt.Errorf("leave netns %s: %w (after: %w)", nsPath, err, fnErr)
		}
		return fmt.Errorf("leave netns %s: %w", nsPath, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// ListenUDP opens a UDP socket bound to addr ("127.0.0.11:0") inside the netns at nsPath
// (empty: the current one).
func ListenUDP(nsPath, addr string) (*net.UDPConn, error) {
	return listenUDP(nsPath, func(fn func() error) error { return Do(nsPath, fn) }, addr)
}

// ListenTCP opens a TCP listener bound to addr inside the netns at nsPath (empty: the
// current one).
func ListenTCP(nsPath, addr string) (*net.TCPListener, error) {
	return listenTCP(nsPath, func(fn func() error) error { return Do(nsPath, fn) }, addr)
}

func listenUDP(name string, do func(func() error) error, addr string) (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := do(func() error {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		conn, err = net.ListenUDP("udp", ua)
		return err
	})
	if err != nil {
		if conn != nil {
			conn.Close() // made, but the thread could not switch back
		}
		return nil, fmt.Errorf("listen udp %s in netns %q: %w", addr, name, err)
	}
	return conn, nil
}

func listenTCP(name string, do func(func() error) error, addr string) (*net.TCPListener, error) {
	var l *net.TCPListener
	err := do(func() error {
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			return err
		}
		l, err = net.ListenTCP("tcp", ta)
		return err
	})
	if err != nil {
		if l != nil {
			l.Close() // made, but the thread could not switch back
		}
		return nil, fmt.Errorf("listen tcp %s in netns %q: %w", addr, name, err)
	}
	return l, nil
}
