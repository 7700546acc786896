// rawq sends hand-made packets to 127.0.0.11:53 and prints the reply header.
package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/miekg/dns"
)

func send(name string, b []byte) {
	c, err := net.Dial("udp", "127.0.0.11:53")
	if err != nil {
		fmt.Println(name, "dial:", err)
		return
	}
	defer c.Close()
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		fmt.Printf("%s: no reply (%v)\n", name, err)
		return
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		fmt.Printf("%s: %d bytes, unpack: %v raw=%x\n", name, n, err, buf[:n])
		return
	}
	fmt.Printf("%s: rcode=%s opcode=%d qr=%v aa=%v ra=%v rd=%v qd=%d an=%d ns=%d ar=%d\n%s\n", name, dns.RcodeToString[m.Rcode], m.Opcode, m.Response, m.Authoritative, m.RecursionAvailable, m.RecursionDesired, len(m.Question), len(m.Answer), len(m.Ns), len(m.Extra), m)
}

func main() {
	target := "b."
	if len(os.Args) > 1 {
		target = os.Args[1]
	}
	m := new(dns.Msg)
	m.SetQuestion(target, dns.TypeA)
	m.Question = append(m.Question, dns.Question{Name: "test.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	b, _ := m.Pack()
	send("qdcount2", b)

	m = new(dns.Msg)
	m.SetQuestion(target, dns.TypeA)
	m.Opcode = 5 // UPDATE
	b, _ = m.Pack()
	send("opcode5", b)

	m = new(dns.Msg)
	m.SetQuestion(target, dns.TypeA)
	m.Opcode = 2 // STATUS
	b, _ = m.Pack()
	send("opcode2", b)

	m = new(dns.Msg)
	m.SetQuestion(target, dns.TypeA)
	m.Response = true
	b, _ = m.Pack()
	send("qr1", b)

	send("short", []byte{1, 2, 3, 4, 5})
	send("garbage-header-qd1", []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff})

	m = new(dns.Msg)
	m.SetQuestion(target, dns.TypeA)
	m.Question = nil
	b, _ = m.Pack()
	send("qdcount0", b)

	m = new(dns.Msg)
	m.SetQuestion(target, dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	b, _ = m.Pack()
	send("class-CH", b)
}
