package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"berth/api"
	"berth/cluster"
	"berth/netmgr"
)

// ClusterConfig is the daemon's cluster store (Docker's legacy --cluster-store flags). The
// zero value is no cluster: bbolt is the only store and no etcd code runs.
type ClusterConfig struct {
	Store     string            // --cluster-store etcd://IP:PORT[,IP:PORT...]
	Advertise string            // --cluster-advertise IP: this host's underlay address
	Opts      map[string]string // --cluster-store-opt kv.cacertfile=...,kv.certfile=...,kv.keyfile=...
}

// enabled reports whether a cluster store is configured.
func (c ClusterConfig) enabled() bool { return c.Store != "" }

// validate checks the cluster flags without dialling anything, so a typo stops the daemon
// before it touches the kernel.
func (c ClusterConfig) validate() error {
	if !c.enabled() {
		switch {
		case c.Advertise != "":
			return errors.New("invalid cluster-advertise: needs --cluster-store")
		case len(c.Opts) > 0:
			return errors.New("invalid cluster-store-opt: needs --cluster-store")
		}
		return nil
	}
	if _, err := cluster.ParseStore(c.Store); err != nil {
		return err
	}
	if _, err := c.advertise(); err != nil {
		return err
	}
	_, err := cluster.TLSConfig(c.Opts)
	return err
}

func (c ClusterConfig) advertise() (netip.Addr, error) {
	if c.Advertise == "" {
		return netip.Addr{}, errors.New("invalid cluster-advertise \"\": --cluster-store needs this host's underlay IP address")
	}
	a, err := netip.ParseAddr(c.Advertise)
	if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("invalid cluster-advertise %q: not a unicast IP address (Docker's IFACE:PORT form is not supported)", c.Advertise)
	}
	return a, nil
}

// hostIDFile keeps this host's cluster ID in the state dir: its endpoints and address
// claims in the cluster store are found again under it after a restart.
const hostIDFile = "cluster-host-id"

// hostID reads this host's cluster ID from root, making one on the first start.
func hostID(root string) (string, error) {
	p := filepath.Join(root, hostIDFile)
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, err := hex.DecodeString(id); err == nil && len(id) == 16 && id == strings.ToLower(id) {
			return id, nil
		}
		return "", fmt.Errorf("%s: not a host ID (16 hex digits); remove it to make a new one", p)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r[:])
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	return id, os.Rename(tmp, p)
}

// openCluster builds the cluster client of d (not yet running: runCluster). It does not
// dial: a daemon whose etcd is down starts, its local networks work and its mirror answers.
func (d *daemon) openCluster() (*cluster.Client, error) {
	c := d.cfg.Cluster
	eps, err := cluster.ParseStore(c.Store)
	if err != nil {
		return nil, err
	}
	adv, err := c.advertise()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cluster.TLSConfig(c.Opts)
	if err != nil {
		return nil, err
	}
	id, err := hostID(d.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("cluster host id: %w", err)
	}
	return cluster.New(cluster.Config{
		Endpoints: eps,
		TLS:       tlsCfg,
		Advertise: adv,
		HostID:    id,
		Log:       d.log.With("component", "cluster"),
		Snapshot:  d.st.Snapshot,
		Apply: func(ctx context.Context, u netmgr.RemoteUpdate) error {
			return d.mgr.ApplyRemote(ctx, u)
		},
		Registered: func(ctx context.Context) {
			if err := d.mgr.ReconcileClaims(ctx); err != nil {
				d.log.Warn("reconcile address claims", "err", err)
			}
		},
	})
}

// runCluster runs the cluster client (registration, publisher, mirror) until ctx is done;
// the returned channel is closed when it has stopped.
func (d *daemon) runCluster(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if d.cluster == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if err := d.cluster.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("cluster store", "err", err)
		}
	}()
	return done
}

// localPeer is this host's entry in a global network's Peers, or zero without a cluster.
func (d *daemon) localPeer() api.NetworkPeer {
	if d.cluster == nil {
		return api.NetworkPeer{}
	}
	return api.NetworkPeer{Name: d.cluster.HostID(), IP: d.cluster.Advertise().String()}
}
