package daemon

import (
	"context"

	"berth/api"
	"berth/netmgr"
	"berth/store"
)

// The daemon's changes. The API handlers go through these instead of d.mgr: each change
// that alters who needs a DNS server is followed by the matching dnsd call, here and
// nowhere else.

func (d *daemon) createSandbox(ctx context.Context, req api.SandboxCreate) (*store.Sandbox, error) {
	sb, err := d.mgr.CreateSandbox(ctx, req) // its DNS server comes from startDNS
	if err != nil {
		return nil, err
	}
	d.events.publish(api.Event{Type: "sandbox", Action: "create", ID: sb.ID, Name: sb.Name})
	return sb, nil
}

func (d *daemon) createNetwork(ctx context.Context, req api.NetworkCreate) (*store.Network, error) {
	n, err := d.mgr.CreateNetwork(ctx, req)
	if err == nil {
		d.events.publish(api.Event{Type: "network", Action: "create", ID: n.ID, Name: n.Name})
	}
	return n, err
}

func (d *daemon) removeNetwork(ctx context.Context, req api.NetworkRemove) error {
	n, err := netmgr.NetworkByRef(d.st.Snapshot(), req.Network)
	if err != nil {
		return err
	}
	req.Network = n.ID
	if err := d.mgr.RemoveNetwork(ctx, req); err != nil {
		return err
	}
	d.events.publish(api.Event{Type: "network", Action: "rm", ID: n.ID, Name: n.Name})
	return nil
}

func (d *daemon) pruneNetworks(ctx context.Context) ([]string, error) {
	deleted, err := d.mgr.PruneNetworks(ctx)
	for _, name := range deleted {
		d.events.publish(api.Event{Type: "network", Action: "rm", Name: name})
	}
	return deleted, err
}

func (d *daemon) removeSandbox(ctx context.Context, req api.SandboxRemove) error {
	sb, err := netmgr.SandboxByRef(d.st.Snapshot(), req.Sandbox)
	if err != nil {
		return err
	}
	req.Sandbox = sb.ID
	if err := d.mgr.RemoveSandbox(ctx, req); err != nil {
		return err
	}
	// The records are gone, so the sandbox's names no longer resolve; the sockets kept the
	// old netns alive until now.
	d.dns.Stop(sb.ID)
	d.events.publish(api.Event{Type: "sandbox", Action: "rm", ID: sb.ID, Name: sb.Name})
	return nil
}

func (d *daemon) connect(ctx context.Context, req api.NetworkConnect) error {
	if err := d.mgr.Connect(ctx, req); err != nil {
		return err
	}
	snap := d.st.Snapshot()
	sb, err := netmgr.SandboxByRef(snap, req.Sandbox)
	if err != nil {
		return err
	}
	d.events.publish(api.Event{Type: "sandbox", Action: "connect", ID: sb.ID, Name: sb.Name, Network: networkName(snap, req.Network)})
	return d.serveDNS(snap, sb)
}

func (d *daemon) disconnect(ctx context.Context, req api.NetworkDisconnect) error {
	snap := d.st.Snapshot()
	if err := d.mgr.Disconnect(ctx, req); err != nil {
		return err
	}
	if sb, err := netmgr.SandboxByRef(snap, req.Sandbox); err == nil {
		d.events.publish(api.Event{Type: "sandbox", Action: "disconnect", ID: sb.ID, Name: sb.Name, Network: networkName(snap, req.Network)})
	}
	return nil
}

// networkName is the name of the network ref names, for events.
func networkName(snap *store.Snapshot, ref string) string {
	if n, err := netmgr.NetworkByRef(snap, ref); err == nil {
		return n.Name
	}
	return ref
}

func (d *daemon) rename(ctx context.Context, req api.SandboxRename) error {
	sb, err := netmgr.SandboxByRef(d.st.Snapshot(), req.Sandbox)
	if err != nil {
		return err
	}
	req.Sandbox = sb.ID
	if err := d.mgr.RenameSandbox(ctx, req); err != nil {
		return err
	}
	// The netns moved to a new path; reopen the server there so forwarding to the
	// sandbox's own --dns servers keeps dialling from inside it.
	snap := d.st.Snapshot()
	renamed, err := snap.Sandbox(sb.ID)
	if err != nil {
		return err
	}
	d.dns.Stop(sb.ID)
	d.events.publish(api.Event{Type: "sandbox", Action: "rename", ID: sb.ID, Name: renamed.Name, OldName: sb.Name})
	return d.serveDNS(snap, renamed)
}
