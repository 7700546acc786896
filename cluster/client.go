package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"berth/netmgr"
)

var _ netmgr.Cluster = (*Client)(nil)

// Client is this host's connection to the cluster store. Its netmgr.Cluster methods may be
// called from any goroutine, before, during or without Run.
type Client struct {
	cfg  Config // defaults set
	etcd *clientv3.Client
	keys keys
	log  *slog.Logger

	kick chan struct{} // capacity 1: a pending Kick

	// beforeWatch, if set (tests), runs between the mirror's full sync and its watch.
	beforeWatch func(rev int64)

	// runCtx ends Run; Close cancels it and waits for done.
	runCtx  context.Context
	stop    context.CancelFunc
	started atomic.Bool
	done    chan struct{} // closed when Run returns

	mu        sync.Mutex // guards following
	lease     clientv3.LeaseID
	rev       int64  // the mirror's last applied revision
	lastError string // the last failure of any request or loop, "" after a success
	closed    bool
}

// Status is the client's state for inspect and metrics.
type Status struct {
	Connected bool   // the connection to etcd is up and the host is registered
	Rev       int64  // the cluster store revision the mirror last applied
	LastError string // the last failure, "" since the last success
}

// New returns a client for cfg. It does not connect: etcd may be down when the daemon
// starts, and every request then fails with ErrClusterUnreachable until it is back.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ec, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints,
		TLS:       cfg.TLS,
		// No DialTimeout: New must not block on a store that is down.
		// The gRPC keepalive finds a peer that vanished without closing the connection
		// (its host lost) within a few seconds rather than at the kernel's TCP timeout.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		PermitWithoutStream:  true,
		// gRPC's default reconnect backoff grows to two minutes: after a long outage the
		// host would stay away that long after etcd is back. Cap it at the loops' own.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: minBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff},
			MinConnectTimeout: cfg.Timeout,
		})},
		// The etcd client logs every retry; the loops here log what matters once.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster store %v: %w", cfg.Endpoints, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Client{
		cfg:    cfg,
		etcd:   ec,
		keys:   keys{cfg.Prefix},
		log:    cfg.Log,
		kick:   make(chan struct{}, 1),
		runCtx: ctx,
		stop:   stop,
		done:   make(chan struct{}),
	}, nil
}

// HostID is this host's cluster ID.
func (c *Client) HostID() string { return c.cfg.HostID }

// Advertise is this host's underlay address.
func (c *Client) Advertise() netip.Addr { return c.cfg.Advertise }

// Kick tells the publisher that this host's endpoints changed: it reads Snapshot again and
// syncs. Kicks coalesce; it never blocks.
func (c *Client) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Status reports the connection, the mirror's revision and the last error.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn := c.etcd.ActiveConnection()
	return Status{
		Connected: c.lease != 0 && conn != nil && conn.GetState() == connectivity.Ready,
		Rev:       c.rev,
		LastError: c.lastError,
	}
}

// Close stops Run (waiting for its goroutines), revokes the host's lease, so that the
// other hosts drop this host's endpoints at once rather than one TTL later, and closes the
// connection. Calls after the first do nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.stop()
	if c.started.Load() {
		<-c.done
	}
	var err error
	if id := c.leaseID(); id != 0 {
		ctx, cancel := c.reqCtx(context.Background())
		if _, rerr := c.etcd.Revoke(ctx, id); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			err = c.fail("revoke host lease", rerr)
		}
		cancel()
		c.setLease(0)
	}
	return errors.Join(err, c.etcd.Close())
}

func (c *Client) leaseID() clientv3.LeaseID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease
}

func (c *Client) setLease(id clientv3.LeaseID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lease = id
}

// noteErr records err (or clears the last error when nil) for Status.
func (c *Client) noteErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.lastError = ""
	} else {
		c.lastError = err.Error()
	}
}

// fail wraps the error of request op: ErrClusterUnreachable first when etcd did not answer
// in time, so the message reads "cluster store unreachable: OP: ...".
func (c *Client) fail(op string, err error) error {
	if unreachable(err) {
		err = fmt.Errorf("%w: %s: %w", netmgr.ErrClusterUnreachable, op, err)
	} else {
		err = fmt.Errorf("%s: %w", op, err)
	}
	c.noteErr(err)
	return err
}

// unreachable reports whether err means etcd did not answer: the request's deadline
// passed (the client waits for a connection until then), or etcd said it cannot serve now.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// keys builds the key layout of doc.go under one prefix.
type keys struct{ prefix string }

func (k keys) host(id string) string            { return k.prefix + "hosts/" + id }
func (k keys) hosts() string                    { return k.prefix + "hosts/" }
func (k keys) network(id string) string         { return k.prefix + "networks/" + id }
func (k keys) networks() string                 { return k.prefix + "networks/" }
func (k keys) netname(lower string) string      { return k.prefix + "netnames/" + lower }
func (k keys) vni(v int) string                 { return fmt.Sprintf("%svni/%d", k.prefix, v) }
func (k keys) vnis() string                     { return k.prefix + "vni/" }
func (k keys) subnet(p netip.Prefix) string     { return k.prefix + "subnets/" + p.String() }
func (k keys) subnets() string                  { return k.prefix + "subnets/" }
func (k keys) claim(netID, ip string) string    { return k.prefix + "ipam/" + netID + "/" + ip }
func (k keys) claims(netID string) string       { return k.prefix + "ipam/" + netID + "/" }
func (k keys) allClaims() string                { return k.prefix + "ipam/" }
func (k keys) endpoint(netID, id string) string { return k.prefix + "endpoints/" + netID + "/" + id }
func (k keys) endpoints(netID string) string    { return k.prefix + "endpoints/" + netID + "/" }
func (k keys) allEndpoints() string             { return k.prefix + "endpoints/" }
