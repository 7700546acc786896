package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"berth/api"
)

// client speaks the daemon's JSON API over its unix socket.
type client struct {
	host string // as given, unix://PATH: quoted in "cannot connect" errors
	hc   *http.Client
}

// newClient parses host (unix://PATH, or a bare absolute path) and returns a client that
// dials it. Nothing is dialled until the first request.
func newClient(host string) (*client, error) {
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok && strings.HasPrefix(host, "/") {
		path, ok = host, true
	}
	if !ok || path == "" {
		return nil, fmt.Errorf("invalid host %q: want unix://PATH", host)
	}
	// One transport per client: the CLI makes a handful of requests, keep-alive is enough.
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &client{host: "unix://" + path, hc: &http.Client{Transport: tr}}, nil
}

// get, post and delete are do for the three methods the API uses.
func (c *client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *client) post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, in, out)
}

func (c *client) delete(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// do sends in (if non-nil) as JSON to api.Version+path and decodes a 2xx reply into out (if
// non-nil). A non-2xx reply becomes an error whose text is the daemon's one-line message.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
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
func (c *client) connError(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return fmt.Errorf("request to the berth daemon at %s: %w", c.host, err)
	}
	msg := fmt.Sprintf("cannot connect to the berth daemon at %s: is it running?", c.host)
	if errors.Is(err, syscall.EACCES) {
		msg = fmt.Sprintf("permission denied while trying to connect to the berth daemon at %s", c.host)
	}
	return &unreachableError{msg: msg}
}

// unreachableError means no request reached the daemon, so commands over several refs stop
// at the first instead of repeating it for each.
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string { return e.msg }

func isUnreachable(err error) bool {
	var u *unreachableError
	return errors.As(err, &u)
}

// decodeError reads an api.Error body; anything else (a proxy, a crash) keeps its status.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return errors.New(e.Message)
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("daemon answered %d: %s", resp.StatusCode, firstLine(msg))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// stream GETs a newline-delimited JSON stream and calls fn for each event until the daemon
// ends it, ctx is done or fn fails.
func (c *client) stream(ctx context.Context, path string, fn func(api.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://berth"+api.Version+path, nil)
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
