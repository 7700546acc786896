// Command rawudp is the benchmark's socket limit: one goroutine reading a UDP socket and
// answering every query with one fixed A record, with no DNS library, no lookup and no
// allocation. Whatever a real server costs beyond it is its own work.
//
//	rawudp -listen 127.0.0.14:53
package main

import (
	"encoding/binary"
	"flag"
	"log"
	"net"
	"net/netip"
)

func main() {
	listen := flag.String("listen", "127.0.0.14:53", "UDP address to serve")
	flag.Parse()
	addr, err := netip.ParseAddrPort(*listen)
	if err != nil {
		log.Fatal(err)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 4096)
	out := make([]byte, 0, 4096)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			log.Fatal(err)
		}
		if n < 12 {
			continue
		}
		// Skip the question name, then type and class.
		off := 12
		for off < n && buf[off] != 0 && buf[off] < 64 {
			off += int(buf[off]) + 1
		}
		off += 5
		if off > n {
			continue
		}
		out = append(out[:0], buf[:off]...)
		binary.BigEndian.PutUint16(out[2:], 0x8180|binary.BigEndian.Uint16(buf[2:])&0x0100) // QR RA (+RD)
		binary.BigEndian.PutUint16(out[6:], 1)                                              // ANCOUNT
		binary.BigEndian.PutUint16(out[8:], 0)
		binary.BigEndian.PutUint16(out[10:], 0)
		out = append(out, 0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 2, 0x58, 0, 4, 10, 9, 9, 9)
		c.WriteToUDPAddrPort(out, from)
	}
}
