package portmap

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newMap(t *testing.T) *Map {
	t.Helper()
	return New(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// freePort returns a port that was free for proto on 127.0.0.1 and [::1] a moment ago.
func freePort(t *testing.T, proto string) uint16 {
	t.Helper()
	for range 20 {
		if port := kernelPort(t, proto); take(proto, "[::1]:"+itoa(port)) == nil {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// kernelPort is a port the kernel picks for proto on 127.0.0.1, let go at once.
func kernelPort(t *testing.T, proto string) uint16 {
	t.Helper()
	if proto == "tcp" {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port)
	}
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func needIPv6(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestHoldRefusesTakenPort(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			var addr string
			if proto == "tcp" {
				l, err := net.Listen("tcp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				addr = l.Addr().String()
			} else {
				c, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				addr = c.LocalAddr().String()
			}
			m := newMap(t)
			free := freePort(t, proto)
			err := m.Hold("a", []Binding{
				{Proto: proto, Host: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), free)},
				{Proto: proto, Host: ap(addr)},
			})
			var be *BindError
			if !errors.As(err, &be) || !IsInUse(err) || be.Binding.Host != ap(addr) {
				t.Fatalf("Hold of a taken port: err = %v, want EADDRINUSE for %s", err, addr)
			}
			if got := m.Len(); got != 0 {
				t.Errorf("after a failed Hold: %d sockets held, want 0", got)
			}
			// All or none: the free port of the same call is free again.
			if err := m.Hold("a", []Binding{{Proto: proto, Host: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), free)}}); err != nil {
				t.Errorf("free port after a failed Hold: %v", err)
			}
			m.Release("a")
		})
	}
}

func TestHoldKeepsOthersOut(t *testing.T) {
	needIPv6(t)
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			m := newMap(t)
			port := freePort(t, proto)
			// 0.0.0.0 and :: are two sockets of one port (IPV6_V6ONLY), as Docker binds them.
			bs := []Binding{{Proto: proto, Host: netip.AddrPortFrom(netip.IPv4Unspecified(), port)},
				{Proto: proto, Host: netip.AddrPortFrom(netip.IPv6Unspecified(), port)}}
			if err := m.Hold("a", bs); err != nil {
				t.Fatal(err)
			}
			if got := m.Held("a"); len(got) != 2 {
				t.Errorf("Held = %v, want both", got)
			}
			// Another process's socket, with SO_REUSEADDR for TCP as most servers set it
			// (Go's listeners do), cannot have the port on any address of either family.
			for _, a := range []string{"127.0.0.1", "0.0.0.0", "[::1]", "[::]"} {
				if err := take(proto, a+":"+itoa(port)); err == nil {
					t.Errorf("%s %s:%d bound while held", proto, a, port)
				}
			}
			m.Release("a")
			m.Release("a") // no-op
			if err := take(proto, "0.0.0.0:"+itoa(port)); err != nil {
				t.Errorf("after Release: %v", err)
			}
		})
	}
}

// take binds addr the way a server would, and lets it go at once.
func take(proto, addr string) error {
	if proto == "tcp" {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
		}
		return err
	}
	c, err := net.ListenPacket("udp", addr)
	if err == nil {
		c.Close()
	}
	return err
}

// TestProxyTCP: a connection to [::1]:PORT reaches an IPv4-only server, with half-close:
// the server answers after the client's EOF.
func TestProxyTCP(t *testing.T) {
	needIPv6(t)
	srv, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c) // until the client's half-close
				io.WriteString(c, "got "+string(b)+" from "+c.RemoteAddr().(*net.TCPAddr).IP.String())
			}()
		}
	}()
	m := newMap(t)
	port := freePort(t, "tcp")
	target := func() (netip.AddrPort, error) { return ap(srv.Addr().String()), nil }
	if err := m.Hold("a", []Binding{{Proto: "tcp", Host: netip.AddrPortFrom(netip.IPv6Loopback(), port), Target: target}}); err != nil {
		t.Fatal(err)
	}
	defer m.Release("a")
	for i := range 3 {
		c, err := net.DialTimeout("tcp", "[::1]:"+itoa(port), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "hello")
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		c.Close()
		if want := "got hello from 127.0.0.1"; string(b) != want || err != nil {
			t.Errorf("connection %d: %q, %v; want %q", i, b, err, want)
		}
	}
	// Release cuts an open connection and frees the port.
	c, err := net.Dial("tcp", "[::1]:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "x")
	time.Sleep(20 * time.Millisecond) // the proxy has dialed
	m.Release("a")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("read after Release: %v, want EOF or reset", err)
	}
	if err := take("tcp", "[::1]:"+itoa(port)); err != nil {
		t.Errorf("port after Release: %v", err)
	}
}

// TestProxyUDP: datagrams to [::1]:PORT reach an IPv4-only server and its answers come
// back, per client; a flow idle for longer than the timeout ends and a new one starts.
func TestProxyUDP(t *testing.T) {
	needIPv6(t)
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP([]byte("echo "+string(buf[:n])), from)
		}
	}()
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	target := func() (netip.AddrPort, error) { return ap(srv.LocalAddr().String()), nil }
	stop := serveUDP(pc, target, slog.New(slog.NewTextHandler(io.Discard, nil)), 100*time.Millisecond)
	defer stop()
	ask := func(c net.Conn, msg string) string {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte(msg))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	for i, c := range clients {
		if got := ask(c, "one\n"); got != "echo one\n" {
			t.Errorf("client %d: %q", i, got)
		}
	}
	time.Sleep(300 * time.Millisecond) // past the idle timeout: the flows end
	if got := ask(clients[0], "two\n"); got != "echo two\n" {
		t.Errorf("after idle: %q", got)
	}
}
