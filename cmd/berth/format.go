package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
)

// parseKeyValues turns repeated KEY=VALUE flags into a map; flag names the option in the
// error ("opt", "label"). nil in, nil out, so empty maps are left out of request bodies.
func parseKeyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := splitKeyValue(kv)
		if !ok {
			return nil, fmt.Errorf("invalid %s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// splitKeyValue splits KEY=VALUE at the first '='; the key must not be blank.
func splitKeyValue(kv string) (k, v string, ok bool) {
	k, v, ok = strings.Cut(kv, "=")
	return k, v, ok && strings.TrimSpace(k) != ""
}

// keyValueFlag is a repeatable KEY=VALUE flag filling a map. Unlike pflag's
// StringToString it never splits a value on commas: `--label a=1,b=2` is one label a
// with the value "1,b=2", as in Docker.
type keyValueFlag struct{ m *map[string]string }

func (f keyValueFlag) String() string {
	if *f.m == nil {
		return ""
	}
	kvs := make([]string, 0, len(*f.m))
	for k, v := range *f.m {
		kvs = append(kvs, k+"="+v)
	}
	slices.Sort(kvs)
	return strings.Join(kvs, ",")
}

func (f keyValueFlag) Set(kv string) error {
	k, v, ok := splitKeyValue(kv)
	if !ok {
		return errors.New("want KEY=VALUE")
	}
	if *f.m == nil {
		*f.m = map[string]string{}
	}
	(*f.m)[k] = v
	return nil
}

func (keyValueFlag) Type() string { return "KEY=VALUE" }

// listFormat says how `ls` prints: the default table, -q IDs, json lines or a template.
type listFormat struct {
	quiet  bool
	format string // "", "table", "json" or a text/template
}

// check parses a template format up front, so a typo fails before any request is made.
func (f listFormat) check() error {
	return checkFormat(f.format)
}

func checkFormat(format string) error {
	switch format {
	case "", "table", "json":
		return nil
	}
	_, err := parseTemplate(format)
	return err
}

// table describes the default `ls` table of one item type.
type table[T any] struct {
	header string         // tab-separated column names
	row    func(T) string // tab-separated cells
	id     func(T) string // what -q prints
}

// printList writes items in the format f asks for, like docker's `ls --format`.
func printList[T any](w io.Writer, f listFormat, items []T, t table[T]) error {
	switch {
	case f.quiet:
		for _, it := range items {
			fmt.Fprintln(w, t.id(it))
		}
		return nil
	case f.format == "" || f.format == "table":
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, t.header)
		for _, it := range items {
			fmt.Fprintln(tw, t.row(it))
		}
		return tw.Flush()
	case f.format == "json":
		// One object per line, as `docker ... ls --format json` prints.
		enc := json.NewEncoder(w)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
		return nil
	}
	return printInspect(w, f.format, items)
}

// parseTemplate parses a --format template with the handful of functions docker users
// reach for ({{json .IPAM}}, {{join .DNS ","}}).
func parseTemplate(text string) (*template.Template, error) {
	funcs := template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"join":  strings.Join,
		"lower": strings.ToLower,
		"upper": strings.ToUpper,
	}
	tmpl, err := template.New("format").Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("invalid format %q: %w", text, err)
	}
	return tmpl, nil
}

// printInspect writes items as docker's inspect commands do: a JSON array indented by four
// spaces, or, with a format, the template executed once per item.
func printInspect[T any](w io.Writer, format string, items []T) error {
	if format == "" {
		b, err := json.MarshalIndent(items, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tmpl, err := parseTemplate(format)
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := tmpl.Execute(w, it); err != nil {
			return fmt.Errorf("format %q: %w", format, err)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// printJSON writes v indented, as the inspect commands do.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
