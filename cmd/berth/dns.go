package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"berth/api"
)

// `berth dns query SANDBOX NAME [TYPE]` shows what a sandbox would get from 127.0.0.11 and
// why, for users who would otherwise have to enter the netns and run dig.

func newDNSCmd(o *globalOpts) *cobra.Command {
	cmd := &cobra.Command{Use: "dns", Short: "Inspect the embedded DNS", Args: cobra.NoArgs}
	var (
		asJSON bool
		format string
	)
	query := &cobra.Command{
		Use:   "query SANDBOX NAME [TYPE]",
		Short: "Ask a sandbox's embedded DNS a question and say which record or upstream answered",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			qtype := "A"
			if len(args) == 3 {
				qtype = strings.ToUpper(args[2])
			}
			if _, ok := dns.StringToType[qtype]; !ok {
				return fmt.Errorf("invalid type %q: not a DNS record type", args[2])
			}
			var it *inspectTemplate
			if format != "" {
				var err error
				if it, err = compileInspect(format); err != nil {
					return err
				}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var got inspected[api.DNSQuery]
			q := url.Values{"name": {args[1]}, "type": {qtype}}
			if err := c.get(cmd.Context(), sandboxPath(args[0], "dns")+"?"+q.Encode(), &got.raw); err != nil {
				return err
			}
			if err := json.Unmarshal(got.raw, &got.v); err != nil {
				return fmt.Errorf("dns query %s %s: %w", args[0], args[1], err)
			}
			res := got.v
			if format == "json" {
				// One compact object (there is one answer; --json indents it).
				b, err := json.Marshal(res)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(o.stdout, "%s\n", b)
				return err
			}
			if it != nil {
				// As inspect -f: the Go fields, then the JSON names.
				if failed, err := printInspect(o.stdout, o.stderr, it, []inspected[api.DNSQuery]{got}); err != nil || failed > 0 {
					return cmp.Or(err, error(&exitError{code: 1}))
				}
				return nil
			}
			if asJSON {
				return printJSON(o.stdout, res)
			}
			fmt.Fprintf(o.stdout, ";; %s %s in %s: %s (flags: %s)\n;; answered by: %s\n",
				res.Name, res.Type, res.Sandbox, res.Rcode, strings.Join(res.Flags, " "), res.How)
			for _, rr := range res.Answer {
				fmt.Fprintln(o.stdout, rr)
			}
			for _, rr := range res.Authority {
				fmt.Fprintln(o.stdout, ";; authority:", rr)
			}
			return nil
		},
	}
	query.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON")
	query.Flags().StringVarP(&format, "format", "f", "", "json, or a Go template over the answer, as inspect -f "+
		"({{.Rcode}}, {{join .Answer \"\\n\"}}, {{.How}})")
	cmd.AddCommand(query)
	return cmd
}
