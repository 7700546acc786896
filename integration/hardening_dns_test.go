package integration

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"berth/internal/dnstest"
	"berth/internal/nsutil"
)

// TestDNSTCPHeldConns (issue 20.2): 1,000 idle TCP connections held open to a sandbox's
// 127.0.0.11:53 do not keep the next TCP query, or an AXFR (forwarded upstream, as every
// type berth does not own), from being answered: the daemon closes the longest idle
// connection to make room rather than the new one.
func TestDNSTCPHeldConns(t *testing.T) {
	d, u := dnsSetup(t)
	const ns, held = "/run/netns/web", 1000
	dnstest.DialTCP(t, ns, held) // held until the test ends

	dbIP := d.ip("db", "app")
	if r := dig(t, "web", "+tcp", "db"); r.status != "NOERROR" || !slices.Equal(r.values("A"), []string{dbIP}) {
		t.Errorf("dig +tcp db with %d connections held: %s %v; want NOERROR %s\n%s", held, r.status, r.answers, dbIP, r.raw)
	}

	var reply *dns.Msg
	r := new(dns.Msg)
	r.SetQuestion("example.", dns.TypeAXFR)
	err := nsutil.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.11:53", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		co := &dns.Conn{Conn: c}
		if err := co.WriteMsg(r); err != nil {
			return err
		}
		reply, err = co.ReadMsg()
		return err
	})
	switch {
	case err != nil:
		t.Errorf("AXFR example. with %d connections held: %v; want the upstream's answer relayed", held, err)
	case reply.Id != r.Id || reply.Rcode != dns.RcodeNameError:
		t.Errorf("AXFR example.: id %d %s; want id %d, the upstream's NXDOMAIN", reply.Id, dns.RcodeToString[reply.Rcode], r.Id)
	}
	if !u.got("example.", "AXFR") {
		t.Error("upstream saw no AXFR example.; want it forwarded")
	}
}
