package main

import (
	"bytes"
	"fmt"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"berth/api"
	"berth/internal/filters"
)

// `berth events` streams the daemon's api.Events like `docker events`; --since asks the
// daemon to replay the ones it kept from before the client connected.

func newEventsCmd(o *globalOpts) *cobra.Command {
	var since, until, format string
	var filter []string
	cmd := &cobra.Command{
		Use:   "events [--since TIME] [--until TIME] [--filter KEY=VALUE] [--format json|TEMPLATE]",
		Short: "Stream what the daemon changes: create, connect, disconnect, rm, rename, restart",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/events"
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				path += "?since=" + t.UTC().Format(time.RFC3339Nano)
			}
			if until != "" {
				t, err := filters.Timestamp(until, time.Now())
				if err != nil {
					return fmt.Errorf("invalid until %q: %w", until, err)
				}
				sep := "?"
				if since != "" {
					sep = "&"
				}
				path += sep + "until=" + t.UTC().Format(time.RFC3339Nano)
			}
			args, err := filters.Parse(filter)
			if err != nil {
				return err
			}
			var tmpl *template.Template
			if format != "" {
				text, _ := expandFormat(format)
				var err error
				if tmpl, err = parseTemplate(text); err != nil {
					return fmt.Errorf("Error parsing format: %w", err)
				}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			return c.stream(cmd.Context(), path, args, func(ev api.Event) error {
				if tmpl != nil {
					// One line per event, written whole, as docker events does.
					var b bytes.Buffer
					if err := tmpl.Execute(&b, newEventContext(ev)); err != nil {
						return fmt.Errorf("Error parsing format: %w", err)
					}
					b.WriteByte('\n')
					_, err := b.WriteTo(o.stdout)
					return err
				}
				_, err := fmt.Fprintln(o.stdout, eventLine(ev))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "replay kept events since a duration ago (10m), a time (RFC 3339) or unix seconds")
	cmd.Flags().StringVar(&until, "until", "", "stop at a duration ago, a time (RFC 3339) or unix seconds")
	cmd.Flags().StringArrayVarP(&filter, "filter", "f", nil, "KEY=VALUE: type, event, network, sandbox (or container), label, scope (repeatable)")
	cmd.Flags().StringVar(&format, "format", "", "json, or a Go template over each event: berth's fields "+
		".Time .Type .Action .ID .Name .Network .OldName, and docker's .Actor.ID .Actor.Attributes.name .Scope .TimeNano")
	return cmd
}

// parseSince reads a time as docker events --since does: a duration ago ("10m"), an RFC
// 3339 date or time, or unix seconds.
func parseSince(s string, now time.Time) (time.Time, error) {
	t, err := filters.Timestamp(s, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid since %q: %w", s, err)
	}
	return t, nil
}

// eventLine is the default text form, close to docker events'.
func eventLine(ev api.Event) string {
	line := fmt.Sprintf("%s %s %s", ev.Time.Format(time.RFC3339Nano), ev.Type, ev.Action)
	if ev.ID != "" {
		line += " " + ev.ID
	}
	attrs := ""
	for _, kv := range [][2]string{{"name", ev.Name}, {"network", ev.Network}, {"oldName", ev.OldName}} {
		if kv[1] != "" {
			if attrs != "" {
				attrs += ", "
			}
			attrs += kv[0] + "=" + kv[1]
		}
	}
	if attrs != "" {
		line += " (" + attrs + ")"
	}
	return line
}
