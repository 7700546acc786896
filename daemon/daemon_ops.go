package daemon

import (
	"context"
	"errors"
	"fmt"

	"berth/api"
	"berth/resolver"
	"berth/store"
)

// The API handlers call netmgr's change methods directly, except a sandbox create, whose
// DNS server starts here; the follow-ups of every change (events, DNS servers stopped or
// reopened) are Changed's, which netmgr tells of each change it made.

// createSandbox makes the sandbox, then its embedded DNS. A sandbox is created whole or not
// at all: a DNS server that fails to start, or a client that went away meanwhile, removes
// it again.
func (d *daemon) createSandbox(ctx context.Context, req api.SandboxCreate) (*store.Sandbox, error) {
	sb, err := d.mgr.CreateSandbox(ctx, req)
	if err != nil {
		return nil, err
	}
	err = d.serveNew(sb.ID)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		rerr := d.mgr.RemoveSandbox(context.WithoutCancel(ctx), api.SandboxRemove{Sandbox: sb.ID, Force: true})
		return nil, errors.Join(fmt.Errorf("create sandbox %s: %w", sb.Name, err), rerr)
	}
	return sb, nil
}

// serveNew starts the embedded DNS of a sandbox just made, if it needs one (as in
// serveDNS). It reads the sandbox as the store has it now and holds dnsMu, so a change made
// to it meanwhile is followed by Changed after this: a removal stops the server started
// here, a rename reopens it.
func (d *daemon) serveNew(id string) error {
	d.dnsMu.Lock()
	defer d.dnsMu.Unlock()
	snap := d.st.Snapshot()
	sb, err := snap.Sandbox(id)
	if err != nil || sb.Mode != store.ModeBridge || !resolver.Embedded(snap, sb.ID) {
		return nil // removed meanwhile, or no server wanted
	}
	if sb.Adopted == "" {
		return d.dns.ServeNew(sb) // a netns netmgr has just made
	}
	return d.dns.Serve(sb)
}
