package daemon

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/miekg/dns"

	"berth/api"
	"berth/internal/httplog"
	"berth/netmgr"
)

// dnsQuery serves GET /v1/sandboxes/{ref}/dns.
func (s *server) dnsQuery(w http.ResponseWriter, r *http.Request) {
	sb, err := netmgr.SandboxByRef(s.d.st.Snapshot(), r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	name, typ := r.URL.Query().Get("name"), strings.ToUpper(r.URL.Query().Get("type"))
	if typ == "" {
		typ = "A"
	}
	qtype, ok := dns.StringToType[typ]
	if !ok {
		writeError(w, &requestError{fmt.Sprintf("type %q is not a DNS record type", typ)})
		return
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		writeError(w, &requestError{fmt.Sprintf("name %q is not a domain name", name)})
		return
	}
	msg, ex, err := s.d.dns.Explain(r.Context(), sb.ID, name, qtype)
	if err != nil {
		writeError(w, err)
		return
	}
	res := api.DNSQuery{Sandbox: sb.Name, Name: name, Type: typ, Rcode: dns.RcodeToString[msg.Rcode],
		Flags: msgFlags(msg), How: ex.How, Cached: ex.Cached, CacheTTL: ex.TTL, Answer: []string{}, Authority: []string{}}
	for _, rr := range msg.Answer {
		res.Answer = append(res.Answer, rr.String())
	}
	for _, rr := range msg.Ns {
		res.Authority = append(res.Authority, rr.String())
	}
	httplog.WriteJSON(w, http.StatusOK, res)
}

func msgFlags(m *dns.Msg) []string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{m.Response, "qr"}, {m.Authoritative, "aa"}, {m.Truncated, "tc"}, {m.RecursionDesired, "rd"}, {m.RecursionAvailable, "ra"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return f
}
