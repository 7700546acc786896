package nsutil

import (
	"runtime"
	"testing"

	"berth/internal/testns"
)

// TestCurrent: Current holds the netns of the caller's thread, also inside a Do.
func TestCurrent(t *testing.T) {
	// Not t.Fatal inside: the Do below runs it on another goroutine.
	currentID := func() (ID, error) {
		h, err := Current()
		if err != nil {
			return ID{}, err
		}
		defer h.Close()
		return h.ID()
	}
	runtime.LockOSThread()
	self, err := IDOf("/proc/thread-self/ns/net")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := currentID(); err != nil || got != self {
		t.Errorf("Current: got %v, %v; want this thread's netns %v", got, err, self)
	}

	testns.Require(t)
	path := testns.NewNetNS(t, "nsutil-current")
	want, err := IDOf(path)
	if err != nil {
		t.Fatal(err)
	}
	var inside ID
	if err := Do(path, func() (err error) { inside, err = currentID(); return err }); err != nil {
		t.Fatal(err)
	}
	if inside != want {
		t.Errorf("Current inside Do(%s): got %v; want %v", path, inside, want)
	}
}
