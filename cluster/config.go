package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"berth/netmgr"
	"berth/store"
)

// Config is what New needs. Endpoints, Advertise, HostID, Snapshot and Apply are required.
type Config struct {
	Endpoints []string      // "IP:PORT" (ParseStore's result)
	TLS       *tls.Config   // nil: plain TCP
	Advertise netip.Addr    // --cluster-advertise: this host's underlay address
	HostID    string        // stable across restarts (the daemon keeps it in its state dir)
	TTL       time.Duration // host lease; 0: DefaultTTL
	Timeout   time.Duration // per request; 0: DefaultTimeout
	Prefix    string        // "": DefaultPrefix; must end in "/"
	Log       *slog.Logger  // nil: slog.Default()
	// Snapshot is this host's store: what the publisher publishes.
	Snapshot func() *store.Snapshot
	// Apply takes the mirror's output (Manager.ApplyRemote). It is called from one
	// goroutine, in revision order; an error makes the mirror start over with a full update.
	Apply func(context.Context, netmgr.RemoteUpdate) error
	// Registered runs after each (re)registration of the host, before its endpoints are
	// published again (the daemon reconciles its address claims there); may be nil.
	Registered func(context.Context)
}

const (
	// DefaultTTL is the host lease: a host that dies leaves every other host's DNS and VXLAN
	// peers this long after its last keepalive. Ten seconds rides out an etcd leader
	// election (about one second) with room to spare.
	DefaultTTL = 10 * time.Second
	// DefaultTimeout bounds every request, so that a change that needs the cluster store
	// fails with ErrClusterUnreachable instead of hanging the caller (netmgr holds its
	// lock meanwhile).
	DefaultTimeout = 3 * time.Second
	// DefaultPrefix is the root of berth's keys; v1 is the layout documented in doc.go.
	DefaultPrefix = "/berth/v1/"
	// minTTL is etcd's own minimum lease TTL (it raises shorter ones to it silently).
	minTTL = 2 * time.Second
)

func (cfg *Config) validate() error {
	switch {
	case len(cfg.Endpoints) == 0:
		return &netmgr.InvalidError{Field: "cluster-store", Value: "", Reason: "no etcd endpoint"}
	case !cfg.Advertise.IsValid() || cfg.Advertise.IsUnspecified():
		return &netmgr.InvalidError{Field: "cluster-advertise", Value: cfg.Advertise.String(), Reason: "want this host's underlay IP address"}
	case cfg.HostID == "" || strings.ContainsAny(cfg.HostID, "/ \t\n"):
		return &netmgr.InvalidError{Field: "cluster host ID", Value: cfg.HostID, Reason: "want a non-empty word without slashes or spaces"}
	case cfg.TTL != 0 && cfg.TTL < minTTL:
		return &netmgr.InvalidError{Field: "cluster TTL", Value: cfg.TTL.String(), Reason: "etcd's minimum lease is 2s"}
	case cfg.Timeout < 0:
		return &netmgr.InvalidError{Field: "cluster timeout", Value: cfg.Timeout.String(), Reason: "negative"}
	case cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/"):
		return &netmgr.InvalidError{Field: "cluster prefix", Value: cfg.Prefix, Reason: `must end in "/"`}
	case cfg.Snapshot == nil || cfg.Apply == nil:
		return fmt.Errorf("cluster config: Snapshot and Apply are required")
	}
	return nil
}

func (cfg *Config) setDefaults() {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
}

// ParseStore parses --cluster-store, "etcd://HOST:PORT[,HOST:PORT...]", into the
// endpoints Config takes.
func ParseStore(s string) ([]string, error) {
	bad := func(reason string, args ...any) error {
		return &netmgr.InvalidError{Field: "cluster-store", Value: s, Reason: fmt.Sprintf(reason, args...)}
	}
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return nil, bad("want etcd://IP:PORT[,IP:PORT...]")
	}
	if rest == "" {
		return nil, bad("no endpoint")
	}
	var eps []string
	seen := map[string]bool{}
	for _, ep := range strings.Split(rest, ",") {
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return nil, bad("endpoint %q: want IP:PORT", ep)
		}
		if host == "" || strings.ContainsAny(host, "/?#@") {
			return nil, bad("endpoint %q: want IP:PORT", ep)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, bad("endpoint %q: port must be 1-65535", ep)
		}
		if seen[ep] {
			return nil, bad("endpoint %q given twice", ep)
		}
		seen[ep] = true
		eps = append(eps, ep)
	}
	return eps, nil
}

// TLS options of --cluster-store-opt (Docker's names).
const (
	OptCACert = "kv.cacertfile" // CA that signed etcd's server certificate
	OptCert   = "kv.certfile"   // this host's client certificate (etcd --client-cert-auth)
	OptKey    = "kv.keyfile"    // its key
)

// TLSConfig builds the client TLS configuration from --cluster-store-opt: nil (plain TCP)
// without any option. kv.certfile and kv.keyfile go together; kv.cacertfile alone verifies
// the server against that CA instead of the system roots.
func TLSConfig(opts map[string]string) (*tls.Config, error) {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same error for the same input
	for _, k := range keys {
		if k != OptCACert && k != OptCert && k != OptKey {
			return nil, &netmgr.InvalidError{Field: "cluster-store-opt", Value: k,
				Reason: "unknown option (want kv.cacertfile, kv.certfile, kv.keyfile)"}
		}
		if opts[k] == "" {
			return nil, &netmgr.InvalidError{Field: "cluster-store-opt", Value: k, Reason: "empty file name"}
		}
	}
	if len(opts) == 0 {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := opts[OptCACert]; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, &netmgr.InvalidError{Field: OptCACert, Value: f, Reason: readReason(err)}
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &netmgr.InvalidError{Field: OptCACert, Value: f, Reason: "no PEM certificate in it"}
		}
	}
	cert, key := opts[OptCert], opts[OptKey]
	switch {
	case cert != "" && key == "":
		return nil, &netmgr.InvalidError{Field: OptKey, Value: "", Reason: "required with kv.certfile"}
	case cert == "" && key != "":
		return nil, &netmgr.InvalidError{Field: OptCert, Value: "", Reason: "required with kv.keyfile"}
	case cert != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, &netmgr.InvalidError{Field: OptCert, Value: cert, Reason: loadReason(err)}
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// readReason is the reason part of a one-line error about a file that cannot be read.
func readReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// loadReason flattens tls.LoadX509KeyPair's error (which may hold a path error) to one line.
func loadReason(err error) string {
	return strings.ReplaceAll(readReason(err), "\n", " ")
}

// reqCtx bounds one request by the configured timeout.
func (c *Client) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.Timeout)
}
