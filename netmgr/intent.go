package netmgr

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"berth/store"
)

// A new sandbox's records are committed once, ready, after its kernel work: the disk commit
// (two fsyncs, ~1 ms) is a create's main cost, and recording the sandbox before the kernel
// work as well would pay it twice. Until that commit is durable, an intent file under
// RunDir/intents names the records being made, so that a crash in the middle leaves the
// restore pass something to undo: it puts the records back (state creating) and the usual
// undo of a half-made sandbox follows.
//
// The file needs to last exactly as long as the kernel objects it names: a kill -9 leaves
// both, a reboot takes both (netns pins live on tmpfs, veths in memory). So it lives in
// RunDir, a tmpfs normally, and is never fsynced. Should RunDir be on a disk, an intent of
// an earlier boot is dropped unread: the netns pin it names may be someone else's by now.

// intent is the content of one intent file.
type intent struct {
	Boot    string          `json:"boot"`    // kernel boot ID when written
	Records json.RawMessage `json:"records"` // store.Intent
}

// bootID identifies the running kernel's boot; "" if the kernel does not say.
var bootID = sync.OnceValue(func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
})

func (m *Manager) intentDir() string { return filepath.Join(m.cfg.RunDir, "intents") }

// writeIntent records what a create is about to make: sandbox sb with endpoints eps.
func (m *Manager) writeIntent(sb *store.Sandbox, eps []*store.Endpoint) error {
	var addrs []*store.Address
	for _, ep := range eps {
		addrs = append(addrs, endpointAddrs(ep)...)
	}
	recs, err := store.Intent(sb, eps, addrs)
	if err != nil {
		return err
	}
	b, err := json.Marshal(intent{Boot: bootID(), Records: recs})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.intentDir(), 0o700); err != nil {
		return fmt.Errorf("write intent: %w", err)
	}
	if err := os.WriteFile(filepath.Join(m.intentDir(), sb.ID), b, 0o600); err != nil {
		return fmt.Errorf("write intent: %w", err)
	}
	return nil
}

// dropIntent removes the intent of sandbox id: its records are committed, or its kernel
// objects undone. A file left behind (a failure here) is dropped by the next restore.
func (m *Manager) dropIntent(id string) {
	if err := os.Remove(filepath.Join(m.intentDir(), id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.cfg.Log.Warn("remove intent", "sandbox", id, "err", err)
	}
}

// recoverIntents puts back the records of every intent of this boot whose sandbox was not
// committed, in state creating, so that restoreSandbox undoes its kernel objects; then
// removes the files.
func (m *Manager) recoverIntents() {
	entries, _ := os.ReadDir(m.intentDir())
	for _, e := range entries {
		id := e.Name()
		path := filepath.Join(m.intentDir(), id)
		b, err := os.ReadFile(path)
		var in intent
		if err == nil {
			err = json.Unmarshal(b, &in)
		}
		_, lookupErr := m.cfg.Store.Snapshot().Sandbox(id)
		switch {
		case err != nil:
			m.cfg.Log.Warn("unreadable intent dropped", "file", path, "err", err)
		case in.Boot != bootID() || bootID() == "":
			// Another boot: the kernel objects it named are gone.
		case lookupErr == nil:
			// Committed; the crash came before the file was removed.
		default:
			m.cfg.Log.Warn("found a sandbox create cut short", "sandbox", id)
			if err := m.cfg.Store.Recover(in.Records); err != nil {
				m.cfg.Log.Error("recover intent", "file", path, "err", err)
			}
		}
		if err := os.Remove(path); err != nil {
			m.cfg.Log.Warn("remove intent", "file", path, "err", err)
		}
	}
}
