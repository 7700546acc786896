package daemon

import (
	"strings"

	"berth/api"
	"berth/netmgr"
)

// Changed is the daemon's netmgr.Observer. Each change netmgr made becomes one api.Event,
// and the embedded DNS follows the sandboxes: a removed sandbox's server stops, a renamed
// one's reopens at its new netns path, a connected one gets one if it now needs it. A new
// sandbox's server is createSandbox's to start, as only it can still undo the create.
//
// netmgr calls it after its lock is released, one change at a time in commit order, so
// the servers' starts and stops happen in the order of the changes that asked for them.
func (d *daemon) Changed(c netmgr.Change) {
	// The kinds are named "network create", "sandbox rm", ...: the event's type and action.
	typ, action, _ := strings.Cut(c.Kind.String(), " ")
	ev := api.Event{Type: typ, Action: action, OldName: c.OldName}
	switch {
	case c.Sandbox != nil:
		ev.ID, ev.Name = c.Sandbox.ID, c.Sandbox.Name
		if c.Network != nil {
			ev.Network, ev.NetworkID = c.Network.Name, c.Network.ID
		}
	case c.Network != nil:
		ev.ID, ev.Name = c.Network.ID, c.Network.Name
	}
	if c.Network != nil {
		ev.Driver = c.Network.Driver
	}
	d.dnsMu.Lock()
	defer d.dnsMu.Unlock()
	switch c.Kind {
	case netmgr.SandboxRemoved:
		// The records are gone, so the sandbox's names no longer resolve; the sockets kept
		// the old netns alive until now.
		d.dns.Stop(c.Sandbox.ID)
	case netmgr.SandboxRenamed:
		// The netns moved to a new path; the server reopens there (below) so forwarding to
		// the sandbox's own --dns servers keeps dialling from inside it.
		d.dns.Stop(c.Sandbox.ID)
	}
	d.events.publish(ev)
	if d.cluster != nil && c.Sandbox != nil {
		// The publisher re-reads this host's endpoints on global networks and syncs
		// them to the cluster store (a rename changes their names, a disconnect drops one).
		d.cluster.Kick()
	}
	switch c.Kind {
	case netmgr.SandboxRenamed, netmgr.SandboxConnected:
		// The change is made, so a failure here is the DNS's alone: logged, as the
		// restore pass logs one.
		if err := d.serveDNS(d.st.Snapshot(), c.Sandbox); err != nil {
			d.log.Error("serve dns", "sandbox", c.Sandbox.Name, "err", err)
		}
	}
}
