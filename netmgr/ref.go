package netmgr

import (
	"errors"
	"fmt"
	"strings"

	"berth/store"
)

// References: the NAME|ID|ID-prefix operands of the API and CLI, resolved the same way for
// reads (daemon) and changes (here).

// notFoundError is `network "x" not found`; it is store.ErrNotFound to errors.Is (→ 404).
type notFoundError struct{ kind, ref string }

func (e *notFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.kind, e.ref) }
func (e *notFoundError) Unwrap() error { return store.ErrNotFound }

// resolveRef finds a record by name (case-insensitive), then full ID, then unique ID prefix,
// the order docker users expect of a NAME|ID operand.
func resolveRef[T any](kind, ref string, byName, byID func(string) (*T, error), list []*T, id func(*T) string) (*T, error) {
	if ref == "" {
		return nil, &notFoundError{kind, ref}
	}
	for _, get := range []func(string) (*T, error){byName, byID} {
		v, err := get(ref)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	var match *T
	n := 0
	prefix := strings.ToLower(ref)
	for _, v := range list {
		if strings.HasPrefix(id(v), prefix) {
			match = v
			n++
		}
	}
	switch n {
	case 0:
		return nil, &notFoundError{kind, ref}
	case 1:
		return match, nil
	}
	return nil, &InvalidError{Field: kind, Value: ref,
		Reason: fmt.Sprintf("ambiguous ID prefix: matches %d %ss", n, kind)}
}

// NetworkByRef resolves a NAME|ID|ID-prefix network reference in snap.
func NetworkByRef(snap *store.Snapshot, ref string) (*store.Network, error) {
	return resolveRef("network", ref, snap.NetworkByName, snap.Network, snap.Networks(),
		func(n *store.Network) string { return n.ID })
}

// SandboxByRef resolves a NAME|ID|ID-prefix sandbox reference in snap; a leading "/" (the
// form docker prints) is ignored.
func SandboxByRef(snap *store.Snapshot, ref string) (*store.Sandbox, error) {
	return resolveRef("sandbox", strings.TrimPrefix(ref, "/"), snap.SandboxByName, snap.Sandbox, snap.Sandboxes(),
		func(sb *store.Sandbox) string { return sb.ID })
}
