package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"berth/api"
	"berth/dockerapi"
	"berth/internal/filters"
	"berth/internal/httplog"
	"berth/netmgr"
	"berth/store"
)

// The Docker Engine API front end (--docker-socket): package dockerapi translates, and
// dockerBackend here answers it with the daemon's own operations and views, the same the
// /v1 handlers use. What is left here is Docker's classification of the failures: its
// status codes and words (checked against dockerd 20.10 and moby 28's source), where
// berth's /v1 has its own.

// validateDockerSocket takes --docker-socket as --socket is taken (a path, unix://PATH as
// in DOCKER_HOST, or tcp://HOST:PORT with the same mutual TLS, as dockerd's -H) and
// refuses one that would take the API socket's place (c.listen, parsed before).
func (c *Config) validateDockerSocket() error {
	if c.DockerSocket == "" {
		return nil
	}
	l, err := parseListen("docker-socket", c.DockerSocket, c.TLS)
	if err != nil {
		return err
	}
	if l.network == c.listen.network && filepath.Clean(l.addr) == filepath.Clean(c.listen.addr) {
		return fmt.Errorf("invalid docker-socket %q: the same address as --socket", c.DockerSocket)
	}
	c.dockerListen = l
	return nil
}

// serveDocker listens on cfg.DockerSocket (a unix socket with the API socket's mode and
// group; tcp:// with its TLS) and serves the Engine API there until stop, which shuts it
// down gracefully (event streams end at once). errc receives the server's error if it
// stops by itself.
func (d *daemon) serveDocker() (stop func(context.Context) error, errc <-chan error, err error) {
	ln, err := d.cfg.dockerListen.listen(d.cfg.socketGID)
	if err != nil {
		return nil, nil, err
	}
	h := dockerapi.New(dockerapi.Config{Backend: dockerBackend{d}, Log: d.log})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(h.StopStreams)
	ch := make(chan error, 1)
	go func() { ch <- srv.Serve(ln) }()
	d.log.Info("docker api serving", "socket", d.cfg.DockerSocket, "api", dockerapi.APIVersion)
	return srv.Shutdown, ch, nil
}

// dockerBackend is the daemon as dockerapi.Backend.
type dockerBackend struct{ d *daemon }

func (b dockerBackend) Networks(args filters.Args) ([]api.Network, error) {
	list, err := b.d.networks(args)
	return list, filterStatus(err)
}

func (b dockerBackend) Network(ref string) (api.Network, error) {
	snap := b.d.st.Snapshot()
	n, err := netmgr.NetworkByRef(snap, ref)
	if err != nil {
		return api.Network{}, refError("network", ref, err)
	}
	return networkView(snap, n, b.d.localPeer()), nil
}

func (b dockerBackend) CreateNetwork(ctx context.Context, req api.NetworkCreate) (string, error) {
	n, err := b.d.mgr.CreateNetwork(ctx, req)
	if err == nil {
		return n.ID, nil
	}
	if errors.Is(err, store.ErrConflict) {
		if _, nerr := b.d.st.Snapshot().NetworkByName(req.Name); nerr == nil {
			return "", &dockerapi.Error{Status: http.StatusConflict, Err: err,
				Message: fmt.Sprintf("network with name %s already exists", req.Name)}
		}
		// No free pool left: moby's ErrNoMoreSubnets is an invalid parameter.
		return "", status(http.StatusBadRequest, err)
	}
	return "", classify(err)
}

func (b dockerBackend) RemoveNetwork(ctx context.Context, ref string) error {
	snap := b.d.st.Snapshot()
	n, err := netmgr.NetworkByRef(snap, ref)
	if err != nil {
		return refError("network", ref, err)
	}
	if n.Predefined {
		return &dockerapi.Error{Status: http.StatusForbidden,
			Message: fmt.Sprintf("%s is a pre-defined network and cannot be removed", n.Name)}
	}
	err = b.d.mgr.RemoveNetwork(ctx, api.NetworkRemove{Network: n.ID})
	if !errors.Is(err, store.ErrConflict) {
		return classify(err)
	}
	// In use: moby 28's words (ActiveEndpointsError, under deleteNetwork's prefix), with
	// the sandboxes as the endpoints' names.
	var names []string
	snap = b.d.st.Snapshot()
	for _, ep := range snap.NetworkEndpoints(n.ID) {
		if ep.Remote() {
			names = append(names, ep.SandboxName+"@"+ep.Host)
		} else if sb, err := snap.Sandbox(ep.SandboxID); err == nil {
			names = append(names, sb.Name)
		}
	}
	if len(names) == 0 {
		return status(http.StatusForbidden, err) // another host's refusal (global network)
	}
	slices.Sort(names)
	return &dockerapi.Error{Status: http.StatusForbidden, Err: err, Message: fmt.Sprintf(
		"error while removing network: network %s has active endpoints (%s)", n.Name, strings.Join(names, ", "))}
}

// Connect and Disconnect look the sandbox up first, as dockerd looks the container up
// first: a missing one is "No such container" even when the network is missing too.
func (b dockerBackend) Connect(ctx context.Context, req api.NetworkConnect) error {
	sb, n, err := b.pair(req.Sandbox, req.Network)
	if err != nil {
		return err
	}
	err = b.d.mgr.Connect(ctx, req)
	if errors.Is(err, store.ErrConflict) {
		if _, eerr := b.d.st.Snapshot().EndpointOf(n.ID, sb.ID); eerr == nil {
			return &dockerapi.Error{Status: http.StatusForbidden, Err: err,
				Message: fmt.Sprintf("endpoint with name %s already exists in network %s", sb.Name, n.Name)}
		}
		return status(http.StatusForbidden, err) // the bridge's port limit: libnetwork's Forbidden
	}
	return classify(err)
}

func (b dockerBackend) Disconnect(ctx context.Context, req api.NetworkDisconnect) error {
	sb, n, err := b.pair(req.Sandbox, req.Network)
	if err != nil {
		return err
	}
	err = b.d.mgr.Disconnect(ctx, req)
	if errors.Is(err, store.ErrNotFound) {
		if _, eerr := b.d.st.Snapshot().EndpointOf(n.ID, sb.ID); eerr != nil {
			// dockerd's words and status (a plain error there: 500), with the ID as it has.
			return &dockerapi.Error{Status: http.StatusInternalServerError, Err: err,
				Message: fmt.Sprintf("container %s is not connected to network %s", sb.ID, n.Name)}
		}
	}
	return classify(err)
}

// pair resolves a sandbox and a network reference, sandbox first.
func (b dockerBackend) pair(sbRef, netRef string) (*store.Sandbox, *store.Network, error) {
	snap := b.d.st.Snapshot()
	sb, err := netmgr.SandboxByRef(snap, sbRef)
	if err != nil {
		return nil, nil, refError("sandbox", sbRef, err)
	}
	n, err := netmgr.NetworkByRef(snap, netRef)
	if err != nil {
		return nil, nil, refError("network", netRef, err)
	}
	return sb, n, nil
}

func (b dockerBackend) PruneNetworks(ctx context.Context, args filters.Args) ([]string, error) {
	names, err := b.d.pruneNetworks(ctx, args)
	if err != nil {
		if ferr := filterStatus(err); ferr != err {
			return nil, ferr
		}
		return nil, classify(err)
	}
	return names, nil
}

func (b dockerBackend) Events(since time.Time) ([]api.Event, <-chan api.Event, func()) {
	past, ch, cancel := b.d.events.subscribe(since)
	return past, ch, cancel
}

// Info counts the sandboxes as Docker's containers: running once ready.
func (b dockerBackend) Info() (dockerapi.Info, error) {
	in := dockerapi.Info{DockerRootDir: b.d.cfg.Root, IPv4Forwarding: b.d.cfg.IPForward,
		Debug: b.d.cfg.LogLevel <= slog.LevelDebug}
	for _, sb := range b.d.st.Snapshot().Sandboxes() {
		in.Containers++
		if sb.State == store.StateReady {
			in.ContainersRunning++
		} else {
			in.ContainersStopped++
		}
	}
	return in, nil
}

// refError is a failed NAME|ID reference in dockerd's words: 404 "network X not found" or
// "No such container: X"; an ambiguous prefix 400 (berth's words: which kind, how many).
func refError(kind, ref string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		if kind == "sandbox" {
			return dockerapi.ContainerNotFound(ref)
		}
		return dockerapi.NetworkNotFound(ref)
	}
	return classify(err)
}

// filterStatus marks a bad filter 400; other errors (and nil) pass unchanged.
func filterStatus(err error) error {
	if err != nil && badFilter(err) {
		return status(http.StatusBadRequest, err)
	}
	return err
}

// classify gives the rest berth's /v1 classes with dockerd's status: 400 invalid, 404 not
// found, 409 conflict, else 500 (dockerapi's default for an unmarked error).
func classify(err error) error {
	var inv *netmgr.InvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return status(http.StatusBadRequest, err)
	case errors.Is(err, store.ErrNotFound):
		return status(http.StatusNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return status(http.StatusConflict, err)
	}
	return err
}

// status is err with a status and its own first line as the message, less the ": conflict"
// or ": not found" that berth's own errors end with (the status says it; dockerd's words
// have no such tail).
func status(code int, err error) error {
	msg := httplog.FirstLine(err.Error())
	for _, class := range []error{store.ErrConflict, store.ErrNotFound} {
		if errors.Is(err, class) {
			msg = strings.TrimSuffix(msg, ": "+class.Error())
		}
	}
	return &dockerapi.Error{Status: code, Message: msg, Err: err}
}
