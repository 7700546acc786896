package dnsd

import (
	"errors"
	"testing"

	"berth/store"
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
