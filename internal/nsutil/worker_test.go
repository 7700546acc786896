package nsutil

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"berth/internal/testns"
)

// TestWorker: Do and Tend run inside the netns, the goroutine ends after Idle (Exit runs)
// and starts again on the next Do, and Do fails after Close.
func TestWorker(t *testing.T) {
	testns.Require(t)
	path := testns.NewNetNS(t, "nsutil-worker")
	h, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want := nsIno(t, path)

	var tended, exits atomic.Int32
	var tendNS atomic.Uint64
	exited := make(chan struct{}, 10)
	w := h.NewWorker(WorkerConfig{
		Idle: 20 * time.Millisecond,
		Tend: func() { tended.Add(1); tendNS.Store(threadNetNS(t)) },
		Exit: func() { exits.Add(1); exited <- struct{}{} },
	})
	for round := range 2 { // the second after the goroutine went idle
		var inside uint64
		errFn := errors.New("from fn")
		if err := w.Do(func() error { inside = threadNetNS(t); return errFn }); !errors.Is(err, errFn) {
			t.Fatalf("round %d: Do: got %v; want fn's error", round, err)
		}
		if inside != want {
			t.Errorf("round %d: netns inside fn: got ino %d; want %d", round, inside, want)
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the goroutine did not end after Idle", round)
		}
	}
	if n := exits.Load(); n != 2 {
		t.Errorf("Exit ran %d times; want 2 (once per goroutine)", n)
	}
	if n := tended.Load(); n < 4 {
		t.Errorf("Tend ran %d times; want at least 4 (start and after Do, twice)", n)
	}
	if got := tendNS.Load(); got != want {
		t.Errorf("netns inside Tend: got ino %d; want %d", got, want)
	}

	before := tended.Load()
	w.Kick()
	deadline := time.Now().Add(5 * time.Second)
	for tended.Load() == before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if tended.Load() == before {
		t.Error("Kick: Tend did not run")
	}
	w.Close()
	if n := exits.Load(); n != 3 {
		t.Errorf("after Close: Exit ran %d times; want 3", n)
	}
	if err := w.Do(func() error { return nil }); !errors.Is(err, ErrWorkerClosed) {
		t.Errorf("Do after Close: got %v; want ErrWorkerClosed", err)
	}
}

// TestWorkerEnterFails: a handle that is no netns file: Do says why and never runs fn.
func TestWorkerEnterFails(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	h := FromFd(int(f.Fd()), "/dev/null")
	defer f.Close()
	w := h.NewWorker(WorkerConfig{Idle: time.Second, Tend: func() { t.Error("Tend ran outside the netns") }})
	defer w.Close()
	ran := false
	if err := w.Do(func() error { ran = true; return nil }); err == nil || ran {
		t.Errorf("Do: got %v, fn ran %v; want the setns error, fn not run", err, ran)
	}
}
