package integration

import (
	"fmt"
	"testing"
)

// TestPropagation: a name answers the moment `sandbox create` returns and stops the moment
// `sandbox rm` returns (answers are read from the live store; nothing to sync or poll).
// Counts stale and missing answers over a loop; both must be zero.
func TestPropagation(t *testing.T) {
	d, _ := dnsSetup(t)
	missing, stale := 0, 0
	const rounds = 25
	for i := 0; i < rounds; i++ {
		name := fmt.Sprintf("p%d", i)
		d.must("sandbox", "create", "--name", name, "--network", "app", "--network-alias", "svc")
		if r := dig(t, "web", name); len(r.values("A")) != 1 {
			missing++
		}
		if r := dig(t, "web", "svc"); len(r.values("A")) != 1 {
			missing++
		}
		d.must("sandbox", "rm", "-f", name)
		if r := dig(t, "web", name); len(r.values("A")) != 0 {
			stale++
		}
		if r := dig(t, "web", "svc"); len(r.values("A")) != 0 {
			stale++
		}
	}
	t.Logf("%d rounds: %d missing, %d stale answers", rounds, missing, stale)
	if missing != 0 || stale != 0 {
		t.Errorf("%d missing and %d stale answers right after the API returned, want none", missing, stale)
	}
}
