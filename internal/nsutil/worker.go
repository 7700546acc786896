package nsutil

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// ErrWorkerClosed is returned by Worker.Do after Close.
var ErrWorkerClosed = errors.New("netns worker closed")

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Idle is how long the goroutine lives with nothing to do: long enough to serve a burst
	// without entering the netns again, short enough that an idle netns holds no thread.
	Idle time.Duration
	// Tend, if set, runs on the thread when it has joined the netns, after each Do, and when
	// Kick asks: the place to keep a few things made in the netns ready (sockets), so
	// that most callers need no trip at all.
	Tend func()
	// Exit, if set, runs on the thread when the goroutine ends (idle or Close), even if the
	// netns could not be joined: the place to release what Tend made.
	Exit func()
}

// Worker runs functions inside one netns on a goroutine locked to an OS thread that has
// joined it and stays there, for a caller that enters the same netns often: a trip costs
// a hand-off to a goroutine that is awake or wakes, not a fresh thread and two setns(2)
// (Handle.Do). Waking a goroutine locked to its own thread still costs tens of µs on a VM
// (the thread, not only the goroutine, has to be scheduled), which is what Tend is for.
//
// The goroutine starts on first use and ends after Idle with nothing to do, or at Close.
// Its thread is never handed back to the Go scheduler: it exits with the goroutine, so no
// other goroutine ever runs in the netns. The Handle must stay open until Close returns.
type Worker struct {
	h    *Handle
	cfg  WorkerConfig
	kick chan struct{} // buffered (1): Tend is due
	stop chan struct{} // closed by Close

	mu     sync.Mutex    // guards following
	jobs   chan job      // to the running goroutine, or nil when none runs
	exited chan struct{} // closed when the last goroutine started has ended; or nil
	closed bool
}

// job is one Do call.
type job struct {
	fn   func() error
	done chan error // buffered: the goroutine never waits on it
}

// NewWorker returns a Worker for the handle's netns; no goroutine runs until it is used.
func (h *Handle) NewWorker(cfg WorkerConfig) *Worker {
	return &Worker{h: h, cfg: cfg, kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Do runs fn on the worker's thread inside the netns and returns its error, or the error
// of joining the netns (fn does not run then), or ErrWorkerClosed. As with Handle.Do, fn
// must not start goroutines that expect to be in the netns; sockets it opens stay there.
func (w *Worker) Do(fn func() error) error {
	j := job{fn: fn, done: make(chan error, 1)}
	for {
		jobs, exited, err := w.running()
		if err != nil {
			return err
		}
		select {
		case jobs <- j:
			return <-j.done
		case <-exited: // went idle just now: start another
		case <-w.stop:
			return ErrWorkerClosed
		}
	}
}

// Kick asks the goroutine, started if need be, to run Tend soon. It never waits; kicks
// made while one is pending are one.
func (w *Worker) Kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.startLocked() != nil {
		return
	}
	// Under mu, so a goroutine that goes idle sees the kick and stays.
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Close ends the goroutine and waits until it has (Exit has run); later calls of Do fail.
// It must not be called from inside Do or Tend.
func (w *Worker) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	exited := w.exited
	w.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

// running returns the goroutine's job channel, starting it if none runs.
func (w *Worker) running() (chan job, chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.startLocked(); err != nil {
		return nil, nil, err
	}
	return w.jobs, w.exited, nil
}

// startLocked starts a goroutine if none runs. w.mu is held.
func (w *Worker) startLocked() error {
	if w.closed {
		return ErrWorkerClosed
	}
	if w.jobs == nil {
		prev := w.exited
		w.jobs, w.exited = make(chan job), make(chan struct{})
		go w.run(w.jobs, prev, w.exited)
	}
	return nil
}

// retire ends the goroutine serving jobs after Idle, unless a kick came in meanwhile.
func (w *Worker) retire(jobs chan job) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.kick) > 0 {
		return false
	}
	if w.jobs == jobs {
		w.jobs = nil // the next use starts another
	}
	return true
}

// run is the locked goroutine; prev is the previous one's exited, so that its Exit and
// this one's Tend never overlap. It deliberately never calls UnlockOSThread: if the
// thread cannot join the netns it is not put back either, and it ends with the goroutine.
func (w *Worker) run(jobs chan job, prev, exited chan struct{}) {
	defer close(exited)
	if prev != nil {
		<-prev
	}
	if w.cfg.Exit != nil {
		defer w.cfg.Exit()
	}
	runtime.LockOSThread()
	err := netns.Set(w.h.h)
	if err != nil {
		err = fmt.Errorf("enter netns %s: %w", w.h.name, err)
	}
	tend := func() {
		if err == nil && w.cfg.Tend != nil {
			w.cfg.Tend()
		}
	}
	tend()
	idle := time.NewTimer(w.cfg.Idle)
	defer idle.Stop()
	for {
		select {
		case j := <-jobs:
			if err != nil {
				j.done <- err
			} else {
				j.done <- j.fn()
			}
		case <-w.kick:
		case <-idle.C:
			if w.retire(jobs) {
				return
			}
		case <-w.stop:
			return
		}
		tend()
		idle.Reset(w.cfg.Idle)
	}
}
