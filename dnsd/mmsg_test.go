package dnsd

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// TestMmsgConn: datagrams from two senders come back in one read with their senders, the
// answers go back with one write to the right sockets, and neither allocates.
func TestMmsgConn(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mc, err := newMmsgConn(srv, 4)
	if err != nil {
		t.Fatal(err)
	}
	var clients [2]*net.UDPConn
	for i := range clients {
		if clients[i], err = net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
		defer clients[i].Close()
	}
	bufs := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64), make([]byte, 64)}
	var lens [4]int
	var from [4]netip.AddrPort
	replies := make([][]byte, 2)
	queries := [][]byte{[]byte("q0"), []byte("q1")}
	roundTrip := func() {
		for i, c := range clients {
			c.Write(queries[i])
		}
		got := 0
		for got < 2 { // both are usually there for the first read; never more than asked for
			n, err := mc.read(bufs[got:], lens[got:], from[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		for i := range got {
			replies[i] = append(replies[i][:0], bufs[i][:lens[i]]...)
			replies[i][0] = 'a'
		}
		if n, err := mc.write(replies, from[:2]); n != 2 || err != nil {
			t.Fatalf("write: %d, %v; want 2 sent", n, err)
		}
	}
	roundTrip()
	for i, c := range clients {
		b := make([]byte, 64)
		n, err := c.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		if want := []byte{'a', byte('0' + i)}; !bytes.Equal(b[:n], want) {
			t.Errorf("client %d got %q; want %q (its own query answered)", i, b[:n], want)
		}
		if local := netip.MustParseAddrPort(c.LocalAddr().String()); from[0] != local && from[1] != local {
			t.Errorf("senders %v, %v; want %v among them", from[0], from[1], local)
		}
	}
	drain := make([]byte, 64)
	if a := testing.AllocsPerRun(50, func() {
		roundTrip()
		clients[0].Read(drain)
		clients[1].Read(drain)
	}); a > 0 {
		t.Errorf("read+write of a batch: %v allocations; want 0", a)
	}
}
