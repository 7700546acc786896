package dnsd

import (
	"os"
	"testing"

	"berth/internal/testns"
)

// TestMain runs the package in a private network and mount namespace when root, so the
// integration tests can create netns and nftables tables without touching the machine's.
func TestMain(m *testing.M) { os.Exit(testns.Main(m)) }
