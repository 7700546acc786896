package netmgr

import (
	"os"
	"syscall"
	"time"
)

// crashAt names a step after which the daemon kills itself with SIGKILL, as if it crashed
// there. Tests set BERTH_CRASH_AT to walk every step of create/connect/rm and check that a
// restart leaves each sandbox fully attached or cleanly absent. Read once: the hook costs a
// string comparison when unset.
var crashAt = os.Getenv("BERTH_CRASH_AT")

// CrashPoints lists every step a test can crash at, in the order they run per operation.
var CrashPoints = []string{
	"network-create:recorded", "network-create:bridge",
	"network-rm:bridge",
	"sandbox-create:recorded", "sandbox-create:netns", "sandbox-create:veth", "sandbox-create:files", "sandbox-create:ready",
	"connect:recorded", "connect:veth", "connect:routes",
	"disconnect:veth", "disconnect:recorded",
	"sandbox-rm:kernel", "sandbox-rm:files", "sandbox-rm:recorded",
	"rename:pinned", "rename:recorded",
}

// pauseAt names a step at which the daemon waits pauseFor before going on, so that a test
// can act while a change is half made: a client that gives up in the middle of a create
// must leave nothing behind. Read once, like crashAt.
var pauseAt = os.Getenv("BERTH_PAUSE_AT")

const pauseFor = time.Second

func crashPoint(step string) {
	if pauseAt != "" && pauseAt == step {
		time.Sleep(pauseFor)
	}
	if crashAt != "" && crashAt == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not delivered synchronously; never run the next step
	}
}
