package nsutil

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Current opens the netns of the calling goroutine's thread: the daemon's own, since no
// goroutine outside a Do stays in another one. It is not /proc/self/ns/net, which names
// the main thread's netns: the Go runtime parks the main thread for good (instead of
// ending it) when a goroutine locked to it exits, in whatever netns that goroutine left
// it.
func Current() (*Handle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := netns.Get() // this thread's: /proc/PID/task/TID/ns/net
	if err != nil {
		return nil, fmt.Errorf("open current netns: %w", err)
	}
	return &Handle{h: h, name: "/proc/thread-self/ns/net"}, nil
}
