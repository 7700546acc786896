package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/spf13/pflag"
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

// printJSON writes v indented, as the inspect commands do.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Output formats follow docker/cli's formatter package: an ls command runs its --format
// template over one row context per item (methods such as ID, Name, Labels that return
// display strings, not the API's JSON), a "table" prefix adds the headers of the fields
// used, and an inspect -f runs over the inspect object itself. Error texts are docker's.

// templateFuncs are docker/cli's templates.basicFunctions, so a format that works with
// docker works here; text/template's own (println, index, printf, ...) come with it.
var templateFuncs = template.FuncMap{
	"json": func(v any) string {
		// Docker's: no HTML escaping of its own, no trailing newline, and an error
		// prints as nothing.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		return strings.TrimSpace(b.String())
	},
	"split": strings.Split,
	"join":  strings.Join,
	//lint:ignore SA1019 docker's title is strings.Title; x/text's would change its output
	"title":    strings.Title,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      padWithSpace,
	"truncate": truncateWithLength,
}

// headerFuncs replace templateFuncs when a table's header line runs over the column
// names, so `table {{upper .Name}}` still heads its column NAME (docker's HeaderFunctions;
// pad stays, to keep the header aligned with its column).
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"split":    func(v, _ string) string { return v },
	"join":     func(v, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

// padWithSpace surrounds a non-empty s with prefix and suffix spaces.
func padWithSpace(s string, prefix, suffix int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
}

// truncateWithLength cuts s to n bytes, as docker's truncate does.
func truncateWithLength(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// parseTemplate parses a format with docker's functions. The template is named "" as in
// docker/cli, so errors read as docker's do: `template: :1:2: executing "" at <.Nope>: ...`.
func parseTemplate(text string) (*template.Template, error) {
	return template.New("").Funcs(templateFuncs).Parse(text)
}

// listFormat is what an ls command's --format, -q and --no-trunc ask for.
type listFormat struct {
	format  string // "" or "table" (the default table), "json", "table TEMPLATE" or TEMPLATE
	quiet   bool
	noTrunc bool
}

// addFlags registers the flags as docker names them; help lists the row fields.
func (lf *listFormat) addFlags(f *pflag.FlagSet, noun, fields string) {
	f.BoolVarP(&lf.quiet, "quiet", "q", false, "only print "+noun+" IDs")
	f.BoolVar(&lf.noTrunc, "no-trunc", false, "do not truncate IDs")
	f.StringVar(&lf.format, "format", "", "table (default), json, raw, table TEMPLATE, or a Go template over each "+noun+
		"'s fields: "+fields)
}

// lister is one ls command's formatter, as docker/cli's network or container formatter.
type lister[T any] struct {
	table   string                     // the default format, "table {{.ID}}\t..."
	raw     [2]string                  // --format raw: the format, and the one with -q
	headers map[string]string          // field -> column header
	row     func(it T, trunc bool) any // the context the template runs over (a pointer)
	// quietWins: -q overrides a custom format with a warning (docker ps); otherwise a
	// custom format overrides -q (docker network ls).
	quietWins bool
	// parseErr and execErr prefix template errors with this command's words in docker.
	parseErr, execErr string
	// precheck runs the format once over an empty row before any request, as docker ps
	// does (so a bad field fails even with nothing to list).
	precheck bool
}

// listTemplate is a compiled ls format.
type listTemplate struct {
	tmpl  *template.Template
	table bool
}

// compile turns lf into a template, failing before any request is made.
func (l *lister[T]) compile(lf listFormat, stderr io.Writer) (*listTemplate, error) {
	format := lf.format
	switch {
	case format == "" || format == "table":
		format = l.table
		if lf.quiet {
			format = "{{.ID}}"
		}
	case format == "raw":
		format = l.raw[0]
		if lf.quiet {
			format = l.raw[1]
		}
	case lf.quiet && l.quietWins:
		fmt.Fprintln(stderr, "WARNING: Ignoring custom format, because both --format and --quiet are set.")
		format = "{{.ID}}"
	}
	if l.precheck && lf.format != "" {
		tmpl, err := parseTemplate(lf.format)
		if err != nil {
			return nil, fmt.Errorf("failed to parse template: %w", err)
		}
		var zero T
		if err := tmpl.Execute(io.Discard, l.row(zero, true)); err != nil {
			return nil, fmt.Errorf("failed to execute template: %w", err)
		}
	}
	text, table := expandFormat(format)
	tmpl, err := parseTemplate(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.parseErr, err)
	}
	return &listTemplate{tmpl: tmpl, table: table}, nil
}

// expandFormat is docker's preFormat: "table" and "json" are keywords, surrounding spaces
// go, and the two characters `\t` and `\n` become a tab and a newline.
func expandFormat(format string) (text string, table bool) {
	switch {
	case strings.HasPrefix(format, "table"):
		format, table = format[len("table"):], true
	case format == "json":
		format = "{{json .}}"
	}
	format = strings.Trim(format, " ")
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format), table
}

// write prints items with lt: all rows are made before anything is written, so a template
// error leaves no partial output, and a table gets its header line and docker's column
// widths (at least 10, 3 spaces apart).
func (l *lister[T]) write(w io.Writer, lt *listTemplate, items []T, trunc bool) error {
	var rows bytes.Buffer
	for _, it := range items {
		if err := lt.tmpl.Execute(&rows, l.row(it, trunc)); err != nil {
			return fmt.Errorf("%s: %w", l.execErr, err)
		}
		rows.WriteByte('\n')
	}
	if !lt.table {
		_, err := rows.WriteTo(w)
		return err
	}
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	var head bytes.Buffer
	// As in docker, a header that cannot be made is left as far as it got.
	_ = lt.tmpl.Funcs(headerFuncs).Execute(&head, headerContext(l.headers))
	head.WriteByte('\n')
	head.WriteTo(tw)
	rows.WriteTo(tw)
	return tw.Flush()
}

// headerContext is what a table's header line runs over: the column name of each field.
type headerContext map[string]string

// Label heads a {{.Label "KEY"}} column with KEY, as docker's SubHeaderContext does.
func (headerContext) Label(name string) string {
	n := strings.Split(name, ".")
	return strings.NewReplacer("-", " ", "_", " ").Replace(n[len(n)-1])
}

// marshalContext is docker/cli's formatter.MarshalJSON: a row's {{json .}} is an object of
// its exported methods that take nothing and return one value, keyed by method name, so
// each value is what {{.Field}} prints ("false", not false).
func marshalContext(ctx any) ([]byte, error) {
	v := reflect.ValueOf(ctx)
	m := map[string]any{}
	for i := range v.NumMethod() {
		name, fn := v.Type().Method(i).Name, v.Method(i)
		if fn.Type().NumIn() != 0 || fn.Type().NumOut() != 1 {
			continue
		}
		m[name] = fn.Call(nil)[0].Interface()
	}
	return json.Marshal(m)
}

// inspectTemplate is a compiled inspect -f: nil tmpl means JSON (indented for "", compact
// for "json").
type inspectTemplate struct {
	format string
	tmpl   *template.Template // or nil
	raw    *template.Template // tmpl with missingkey=error, for the map fallback
}

// compileInspect parses an inspect format; docker exits 64 on a bad one.
func compileInspect(format string) (*inspectTemplate, error) {
	it := &inspectTemplate{format: format}
	if format == "" || format == "json" {
		return it, nil
	}
	tmpl, err := parseTemplate(format)
	if err != nil {
		return nil, &exitError{code: 64, err: fmt.Errorf("template parsing error: %w", err)}
	}
	it.tmpl = tmpl
	it.raw = template.Must(tmpl.Clone()).Option("missingkey=error")
	return it, nil
}

// inspected is one object as inspect got it: decoded, and the daemon's JSON.
type inspected[T any] struct {
	v   T
	raw json.RawMessage
}

// execute runs the template as docker's TemplateInspector does: over the typed object
// first (so {{.ID}} and {{.Created}} work on the Go fields), then, if that fails, over the
// JSON decoded into maps (so {{.Id}} and every JSON name work too); the second error is the
// one reported.
func (it *inspectTemplate) execute(w *bytes.Buffer, typed any, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := it.tmpl.Execute(&b, typed); err == nil {
		b.WriteByte('\n')
		_, err = b.WriteTo(w)
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m any
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("unable to read inspect data: %w", err)
	}
	b.Reset()
	if err := it.raw.Execute(&b, m); err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	b.WriteByte('\n')
	_, err := b.WriteTo(w)
	return err
}

// printInspect writes what inspect found: a JSON array (docker's four-space indent, or
// compact for -f json), or the template's output per object. It returns the objects whose
// template failed, already reported on stderr; with no output at all a template format
// still prints an empty line, as docker does.
func printInspect[T any](stdout, stderr io.Writer, it *inspectTemplate, items []inspected[T]) (failed int, err error) {
	if it.tmpl == nil {
		vs := make([]T, len(items))
		for i := range items {
			vs[i] = items[i].v
		}
		var b []byte
		if it.format == "json" {
			b, err = json.Marshal(vs)
		} else {
			b, err = json.MarshalIndent(vs, "", "    ")
		}
		if err != nil {
			return 0, err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return 0, err
	}
	var out bytes.Buffer
	for _, item := range items {
		if err := it.execute(&out, item.v, item.raw); err != nil {
			fmt.Fprintln(stderr, err)
			failed++
		}
	}
	if out.Len() == 0 {
		out.WriteByte('\n')
	}
	_, err = out.WriteTo(stdout)
	return failed, err
}
