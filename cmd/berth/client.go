package main

import (
	"context"
	"net/http"

	"berth/api"
	apiclient "berth/api/client"
	"berth/internal/filters"
)

// client is the CLI's view of api/client: the four verbs it uses, named for the call sites.
type client struct {
	*apiclient.Client
}

// newClient parses host (unix://PATH, or a bare absolute path); nothing is dialled until the
// first request.
func newClient(host string) (*client, error) {
	c, err := apiclient.New(host)
	if err != nil {
		return nil, err
	}
	return &client{c}, nil
}

func (c *client) get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

func (c *client) post(ctx context.Context, path string, in, out any) error {
	return c.Do(ctx, http.MethodPost, path, in, out)
}

func (c *client) delete(ctx context.Context, path string) error {
	return c.Do(ctx, http.MethodDelete, path, nil, nil)
}

func (c *client) stream(ctx context.Context, path string, args filters.Args, fn func(api.Event) error) error {
	return c.Events(ctx, path, args, fn)
}

// isUnreachable: no request reached the daemon, so commands over several refs stop at the
// first instead of repeating it for each.
func isUnreachable(err error) bool { return apiclient.IsUnreachable(err) }
