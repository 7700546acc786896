package main

import (
	"net/url"
	"testing"

	"berth/api"
)

// TestFilterFlags: each --filter travels as Docker's filters JSON; -f is --filter where
// docker has it (not on network prune, where it is --force).
func TestFilterFlags(t *testing.T) {
	q := func(s string) string { return "?filters=" + url.QueryEscape(s) }
	runRequestCases(t, []requestCase{
		{
			name:       "network ls -f",
			args:       []string{"network", "ls", "-q", "-f", "name=web", "--filter", "label=a=1", "-f", "name=db"},
			reply:      []api.Network{},
			wantMethod: "GET", wantPath: "/v1/networks" + q(`{"label":{"a=1":true},"name":{"db":true,"web":true}}`),
		},
		{
			name:       "network ls docker's spelling",
			args:       []string{"network", "ls", "-q", "-f", " Dangling = true "},
			reply:      []api.Network{},
			wantMethod: "GET", wantPath: "/v1/networks" + q(`{"dangling":{"true":true}}`),
		},
		{
			name:       "network prune --filter",
			args:       []string{"network", "prune", "-f", "--filter", "until=24h", "--filter", "label!=keep"},
			reply:      api.PruneResponse{Deleted: []string{"old"}},
			wantMethod: "POST", wantPath: "/v1/networks/prune" + q(`{"label!":{"keep":true},"until":{"24h":true}}`),
			wantOut: "old\n",
		},
		{
			name:       "sandbox ls -f",
			args:       []string{"sandbox", "ls", "-q", "-f", "publish=8080/tcp"},
			reply:      []api.Sandbox{},
			wantMethod: "GET", wantPath: "/v1/sandboxes" + q(`{"publish":{"8080/tcp":true}}`),
		},
		{
			name:       "ps -f",
			args:       []string{"ps", "-q", "--filter", "network=app"},
			reply:      []api.Sandbox{},
			wantMethod: "GET", wantPath: "/v1/sandboxes" + q(`{"network":{"app":true}}`),
		},
		{
			name:       "events -f until",
			args:       []string{"events", "--until", "2026-12-07T08:00:00Z", "-f", "type=network", "--format", "{{.Action}} {{.Name}}"},
			reply:      api.Event{Type: "network", Action: "create", Name: "app"},
			wantMethod: "GET", wantPath: "/v1/events?until=2026-12-07T08:00:00Z&filters=" + url.QueryEscape(`{"type":{"network":true}}`),
			wantOut: "create app\n",
		},
	})
}

func TestFilterFlagErrors(t *testing.T) {
	runErrorCases(t, []errorCase{
		// docker network ls -f foo: bad format of filter (expected name=value)
		{name: "no equals", args: []string{"network", "ls", "-f", "foo"},
			wantErr: "bad format of filter (expected name=value)"},
		{name: "prune no equals", args: []string{"network", "prune", "--filter", "until"},
			wantErr: "bad format of filter (expected name=value)"},
		{name: "events no equals", args: []string{"events", "-f", "type"},
			wantErr: "bad format of filter (expected name=value)"},
		{name: "events bad until", args: []string{"events", "--until", "abc"},
			wantErr: `invalid until "abc": failed to parse value as time or duration: "abc"`},
	})
}
