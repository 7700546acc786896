package etcdtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one run of etcd, from fork to wait.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd.Wait's result; read after done
}

// launch starts etcd without waiting for it to serve.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	cmd := exec.Command(Binary, s.args...)
	cmd.Env = environ()
	cmd.Stdout, cmd.Stderr = s.out, s.out
	// If the test binary dies (go test's timeout), etcd must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child ends, not the process.
		// Go ends a thread whose goroutine exits while locked to it (as a netns thread
		// does), so fork and wait on a thread locked to this goroutine for etcd's life.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("run %s: %w", Binary, err)
	}
	s.proc = p
	return nil
}

// environ is the test's environment without ETCD_* variables, which etcd reads as flags
// (and rejects when they repeat one on the command line).
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// signal sends sig to the running etcd, if any, and waits for it to exit. It reports an
// error if etcd had already exited on its own or does not exit on sig in time.
func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	// os.Process signals through a pidfd: it cannot reach another process that reused
	// the pid after etcd exited.
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send %v: %w", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("still running %s after %v: killed", stopTimeout, sig)
	}
	var exit *exec.ExitError
	if p.err == nil || errors.As(p.err, &exit) && exitedOn(exit, sig) {
		return nil
	}
	return fmt.Errorf("exited on its own: %w", p.err)
}

func exitedOn(exit *exec.ExitError, sig syscall.Signal) bool {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// logBuffer keeps etcd's output, up to maxLog bytes; exec copies into it from its own
// goroutines while the test reads it.
type logBuffer struct {
	mu  sync.Mutex // guards following
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxLog - b.buf.Len(); room < len(p) {
		b.buf.Write(p[:max(room, 0)])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }
