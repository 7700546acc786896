package main

import (
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
	var asJSON bool
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
			c, err := o.client()
			if err != nil {
				return err
			}
			var res api.DNSQuery
			q := url.Values{"name": {args[1]}, "type": {qtype}}
			if err := c.get(cmd.Context(), sandboxPath(args[0], "dns")+"?"+q.Encode(), &res); err != nil {
				return err
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
	cmd.AddCommand(query)
	return cmd
}
