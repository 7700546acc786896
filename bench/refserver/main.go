// Command refserver is the benchmark's reference: the smallest miekg/dns server answering
// from a Go map (miekg's goroutine per UDP packet, dns.Msg unpack and pack), the ceiling
// for a design built on miekg's server. It also serves as the local upstream for forwarded
// names (-any).
//
//	refserver -listen 127.0.0.12:53 -hosts FILE   # FILE: "IP NAME [NAME...]" lines
//	refserver -listen 127.0.0.53:53 -any 10.9.9.9 # every A query gets this address
package main

import (
	"bufio"
	"flag"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/miekg/dns"
)

type server struct {
	a   map[string][]net.IP // lower-case fqdn -> IPv4 addresses
	ptr map[string]string   // reverse fqdn -> first name
	any net.IP
}

func main() {
	listen := flag.String("listen", "127.0.0.12:53", "UDP address to serve")
	hosts := flag.String("hosts", "", "hosts-format file of names to answer")
	anyIP := flag.String("any", "", "answer every A query with this address (upstream mode)")
	flag.Parse()
	s := &server{a: map[string][]net.IP{}, ptr: map[string]string{}}
	if *anyIP != "" {
		s.any = net.ParseIP(*anyIP).To4()
	}
	if *hosts != "" {
		f, err := os.Open(*hosts)
		if err != nil {
			log.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			ip, err := netip.ParseAddr(fields[0])
			if err != nil {
				log.Fatal(err)
			}
			for _, n := range fields[1:] {
				k := dns.Fqdn(strings.ToLower(n))
				s.a[k] = append(s.a[k], ip.AsSlice())
			}
			rev, _ := dns.ReverseAddr(ip.String())
			if _, ok := s.ptr[rev]; !ok {
				s.ptr[rev] = dns.Fqdn(fields[1])
			}
		}
		f.Close()
	}
	srv := &dns.Server{Addr: *listen, Net: "udp", Handler: s}
	log.Fatal(srv.ListenAndServe())
}

func (s *server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 600}
	switch {
	case s.any != nil && q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: s.any})
	case s.any != nil:
	case q.Qtype == dns.TypePTR:
		if t, ok := s.ptr[strings.ToLower(q.Name)]; ok {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr, Ptr: t})
		} else {
			m.Rcode = dns.RcodeNameError
		}
	default:
		ips, ok := s.a[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		if q.Qtype == dns.TypeA {
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
			}
		}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	m.Truncate(bufsize(r))
	w.WriteMsg(m)
}

func bufsize(r *dns.Msg) int {
	if opt := r.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}
