package netmgr

import "berth/store"

// Observer is told of each change the Manager has committed. The daemon subscribes the
// embedded DNS (stop a removed sandbox's server, reopen a renamed one's) and the event
// stream to it, so netmgr never calls up into them.
//
// Changed is called after the Manager's lock is released, one change at a time and in
// commit order, before the method that made the change returns; it must not call back into
// the Manager, and a slow one holds up the changes that follow. Only changes made are reported: a failed
// or undone one reports nothing, a prune one NetworkRemoved per network it removed, and
// Restore nothing. The records are those of the commit (a removed record as it was):
// shared, never to be modified.
type Observer interface {
	Changed(Change)
}

// Change is one committed change.
type Change struct {
	Kind    ChangeKind
	Network *store.Network // NetworkCreated, NetworkRemoved; the network of Connected, Disconnected
	Sandbox *store.Sandbox // every Sandbox* kind: the sandbox after the change (before it, for SandboxRemoved)
	OldName string         // SandboxRenamed: the name before
}

// ChangeKind says what a Change did.
type ChangeKind int

const (
	NetworkCreated ChangeKind = iota + 1
	NetworkRemoved
	SandboxCreated
	SandboxRemoved
	SandboxRenamed
	SandboxConnected
	SandboxDisconnected
)

func (k ChangeKind) String() string {
	switch k {
	case NetworkCreated:
		return "network create"
	case NetworkRemoved:
		return "network rm"
	case SandboxCreated:
		return "sandbox create"
	case SandboxRemoved:
		return "sandbox rm"
	case SandboxRenamed:
		return "sandbox rename"
	case SandboxConnected:
		return "sandbox connect"
	case SandboxDisconnected:
		return "sandbox disconnect"
	}
	return "unknown change"
}
