// Package client speaks berth's JSON API over the daemon's socket (unix, or tcp:// with
// mutual TLS), for the berth CLI and other programs (the CNI plugin). It owns no state beyond one HTTP transport and has no
// policy: it sends api types and hands back the daemon's answer, classified by status.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"berth/api"
	"berth/internal/filters"
	"berth/internal/tlsfiles"
)

// EnvHost names the environment variable the berth CLI reads for the daemon's address.
const EnvHost = "BERTH_HOST"

// Client is one daemon's API. The zero value is not usable: use New.
type Client struct {
	host string // unix://PATH or tcp://HOST:PORT, quoted in errors
	hc   *http.Client
}

// DefaultHost is $BERTH_HOST, else unix:// + api.DefaultSocket.
func DefaultHost() string {
	if h := os.Getenv(EnvHost); h != "" {
		return h
	}
	return "unix://" + api.DefaultSocket
}

// New parses host (unix://PATH, or a bare absolute path) and returns a client that dials it.
// Nothing is dialled until the first request. A tcp:// host needs NewTLS.
func New(host string) (*Client, error) { return NewTLS(host, nil) }

// NewTLS is New that also takes tcp://HOST:PORT, spoken over mutual TLS with tc (from
// LoadTLS): a berth daemon on TCP accepts nothing else. tc is unused for a unix socket.
func NewTLS(host string, tc *tls.Config) (*Client, error) {
	if hostport, ok := strings.CutPrefix(host, "tcp://"); ok {
		h, port, err := net.SplitHostPort(hostport)
		if err != nil || port == "" {
			return nil, fmt.Errorf("invalid host %q: want tcp://HOST:PORT", host)
		}
		if tc == nil {
			return nil, fmt.Errorf("invalid host %q: tcp:// needs mutual TLS: --tlscacert, --tlscert and --tlskey (or %s)", host, EnvCertPath)
		}
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName = h // the daemon's certificate must name the host dialled
		}
		tr := &http.Transport{
			// The URL stays http://berth; the connection under it is TLS to hostport.
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				d := tls.Dialer{Config: tc}
				return d.DialContext(ctx, "tcp", hostport)
			},
		}
		return &Client{host: host, hc: &http.Client{Transport: tr}}, nil
	}
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok && strings.HasPrefix(host, "/") {
		path, ok = host, true
	}
	if !ok || path == "" {
		return nil, fmt.Errorf("invalid host %q: want unix://PATH or tcp://HOST:PORT", host)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{host: "unix://" + path, hc: &http.Client{Transport: tr}}, nil
}

// EnvCertPath names the environment variable of a directory holding ca.pem, cert.pem and
// key.pem for a tcp:// daemon, as DOCKER_CERT_PATH does for docker.
const EnvCertPath = "BERTH_CERT_PATH"

// LoadTLS loads the client side of mutual TLS: the CA that signed the daemon's certificate,
// and this client's certificate and key, which the daemon checks against its own CA.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cert, pool, err := tlsfiles.Load(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Host is the daemon's address as unix://PATH or tcp://HOST:PORT.
func (c *Client) Host() string { return c.host }

// Ping succeeds when the daemon answers GET /v1/ping.
func (c *Client) Ping(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, "/ping", nil, nil)
}

// Network is GET /v1/networks/{ref}.
func (c *Client) Network(ctx context.Context, ref string) (*api.Network, error) {
	var n api.Network
	if err := c.Do(ctx, http.MethodGet, "/networks/"+url.PathEscape(ref), nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Networks is GET /v1/networks?filters=: the networks that match args (all for none).
func (c *Client) Networks(ctx context.Context, args filters.Args) ([]api.Network, error) {
	var out []api.Network
	if err := c.Do(ctx, http.MethodGet, WithFilters("/networks", args), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// PruneNetworks is POST /v1/networks/prune?filters=: removes the unused networks that
// match args and returns their names.
func (c *Client) PruneNetworks(ctx context.Context, args filters.Args) ([]string, error) {
	var out api.PruneResponse
	if err := c.Do(ctx, http.MethodPost, WithFilters("/networks/prune", args), nil, &out); err != nil {
		return nil, err
	}
	return out.Deleted, nil
}

// WithFilters adds args to path as the filters query parameter; path unchanged for none.
func WithFilters(path string, args filters.Args) string {
	j := args.JSON()
	if j == "" {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "filters=" + url.QueryEscape(j)
}

// Sandboxes is GET /v1/sandboxes?filters=: the sandboxes that match args (all for none).
func (c *Client) Sandboxes(ctx context.Context, args filters.Args) ([]api.Sandbox, error) {
	var out []api.Sandbox
	if err := c.Do(ctx, http.MethodGet, WithFilters("/sandboxes", args), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Sandbox is GET /v1/sandboxes/{ref}.
func (c *Client) Sandbox(ctx context.Context, ref string) (*api.Sandbox, error) {
	var sb api.Sandbox
	if err := c.Do(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(ref), nil, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}

// CreateSandbox is POST /v1/sandboxes.
func (c *Client) CreateSandbox(ctx context.Context, req api.SandboxCreate) (*api.IDResponse, error) {
	var out api.IDResponse
	if err := c.Do(ctx, http.MethodPost, "/sandboxes", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveSandbox is DELETE /v1/sandboxes/{ref}, with ?force=1 when force is set.
func (c *Client) RemoveSandbox(ctx context.Context, ref string, force bool) error {
	path := "/sandboxes/" + url.PathEscape(ref)
	if force {
		path += "?force=1"
	}
	return c.Do(ctx, http.MethodDelete, path, nil, nil)
}

// Do sends in (if non-nil) as JSON to api.Version+path and decodes a 2xx reply into out (if
// non-nil). A non-2xx reply is a *StatusError; a daemon that cannot be dialled is an
// *UnreachableError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	// The host part is never dialled (DialContext ignores it) but must be valid.
	req, err := http.NewRequestWithContext(ctx, method, "http://berth"+api.Version+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode reply to %s %s: %w", method, path, err)
	}
	return nil
}

// connError turns a failed request into the one line a user can act on.
func (c *Client) connError(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		var ue *url.Error
		if errors.As(err, &ue) {
			// The URL is always http://berth/...: only the cause says something.
			return fmt.Errorf("request to the berth daemon at %s: %s %s: %w", c.host, ue.Op, strings.TrimPrefix(ue.URL, "http://berth"), ue.Err)
		}
		return fmt.Errorf("request to the berth daemon at %s: %w", c.host, err)
	}
	msg := fmt.Sprintf("cannot connect to the berth daemon at %s: is it running?", c.host)
	if errors.Is(err, syscall.EACCES) {
		msg = fmt.Sprintf("permission denied while trying to connect to the berth daemon at %s", c.host)
	}
	return &UnreachableError{msg: msg, err: err}
}

// UnreachableError means no request reached the daemon.
type UnreachableError struct {
	msg string
	err error // the dial error
}

func (e *UnreachableError) Error() string { return e.msg }
func (e *UnreachableError) Unwrap() error { return e.err }

// IsUnreachable reports whether err says the daemon could not be dialled.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// StatusError is a non-2xx answer of the daemon.
type StatusError struct {
	Code    int    // HTTP status: 400, 404, 409, 500
	Message string // the daemon's one line, or the status text
}

func (e *StatusError) Error() string { return e.Message }

// IsNotFound reports whether the daemon answered 404 (no such sandbox or network).
func IsNotFound(err error) bool {
	var s *StatusError
	return errors.As(err, &s) && s.Code == http.StatusNotFound
}

// decodeError reads an api.Error body; anything else (a proxy, a crash) keeps its status.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return &StatusError{Code: resp.StatusCode, Message: e.Message}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	msg, _, _ = strings.Cut(msg, "\n")
	return &StatusError{Code: resp.StatusCode, Message: fmt.Sprintf("daemon answered %d: %s", resp.StatusCode, msg)}
}

// Events GETs the daemon's event stream at api.Version+path (newline-delimited JSON; path
// carries since and until) with args as its filters, and calls fn for each event until the
// daemon ends it, ctx is done or fn fails.
func (c *Client) Events(ctx context.Context, path string, args filters.Args, fn func(api.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://berth"+api.Version+WithFilters(path, args), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev api.Event
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("event stream: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
