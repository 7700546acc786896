package store

import (
	"os/exec"
	"regexp"
	"testing"
)

// TestInlining: the getters a DNS answer calls most stay within the compiler's inlining
// budget. Pushed over it by a small change, they still work and every other test passes,
// but resolver BenchmarkLookup gets 3-11% slower.
func TestInlining(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package")
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	out, err := exec.Command(gotool, "build", "-gcflags=-m", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	for _, fn := range []string{"Sandbox", "Network", "SandboxEndpoints"} {
		if !regexp.MustCompile(`can inline \(\*Snapshot\)\.` + fn + `\b`).Match(out) {
			t.Errorf("(*Snapshot).%s is not inlinable any more (go build -gcflags=-m=2 ./store/ says why)", fn)
		}
	}
}
