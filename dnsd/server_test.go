package dnsd

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"berth/netmgr/store"
)

// TestServeRefuses: no netns of its own (it would be the daemon's) and after Close.
func TestServeRefuses(t *testing.T) {
	s := New(Config{Store: store.NewMemory()})
	if err := s.Serve(&store.Sandbox{ID: clientID, Name: "client"}); !errors.Is(err, errNoNetNS) {
		t.Errorf("Serve without NetNSPath: got %v; want errNoNetNS", err)
	}
	s.Stop("unknown") // no-op
	s.Close()
	if err := s.Serve(&store.Sandbox{ID: clientID, Name: "client", NetNSPath: "/run/netns/x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close: got %v; want ErrClosed", err)
	}
}

// TestTCPConnLimit: connections beyond the cap are closed at once; a freed slot is reused.
func TestTCPConnLimit(t *testing.T) {
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := &limitListener{TCPListener: tl, slots: make(chan struct{}, 1)}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", tl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := dial()
	defer first.Close()
	held := <-accepted
	second := dial()
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("second connection over the cap: read got %v; want EOF (closed by the server)", err)
	}
	held.Close()
	third := dial()
	defer third.Close()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Error("connection after a slot was freed was not accepted")
	}
}
