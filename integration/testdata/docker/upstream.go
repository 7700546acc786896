// U: the test upstream of docker-dns.md §5 (A test.example -> 10.11.12.13 TTL 600, NXDOMAIN+SOA otherwise); logs every query.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"github.com/miekg/dns"
)

var logf *os.File

func main() {
	addrs := flag.String("addr", "127.0.0.1:53", "comma-separated listen addrs")
	lp := flag.String("log", "/tmp/oracle-u/queries.log", "query log")
	flag.Parse()
	var err error
	logf, err = os.OpenFile(*lp, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	h := dns.HandlerFunc(serve)
	for _, a := range strings.Split(*addrs, ",") {
		for _, n := range []string{"udp", "tcp"} {
			s := &dns.Server{Addr: a, Net: n, Handler: h}
			go func() { log.Fatal(s.ListenAndServe()) }()
		}
	}
	select {}
}

func serve(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	fmt.Fprintf(logf, "%s %s %s id=%d edns=%v from=%s local=%s\n", w.LocalAddr().Network(), q.Name, dns.TypeToString[q.Qtype], r.Id, r.IsEdns0() != nil, w.RemoteAddr(), w.LocalAddr())
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if strings.EqualFold(q.Name, "test.example.") && q.Qtype == dns.TypeA {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 600}, A: net.IPv4(10, 11, 12, 13)})
	} else {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns.example.", Mbox: "admin.example.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60})
	}
	w.WriteMsg(m)
}
