package integration

import (
	"strings"
	"testing"
	"time"
)

// TestCompletion: the shell scripts' `berth __complete ...` against a running daemon
// completes network and sandbox names from it, and with the daemon gone prints no
// candidates and no error (ShellCompDirectiveError: the scripts offer nothing).
func TestCompletion(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.must("network", "create", "app")
	d.must("network", "create", "back")
	d.must("sandbox", "create", "--name", "web", "--network", "app")
	d.must("sandbox", "create", "--name", "db", "--network", "back")
	d.must("network", "connect", "app", "db")
	d.must("sandbox", "create", "--name", "worker", "--network", "back")

	complete := func(args ...string) (string, string) {
		t.Helper()
		o, e, err := d.run(append([]string{"__complete"}, args...)...)
		if err != nil {
			t.Fatalf("berth __complete %s: %v: %s", strings.Join(args, " "), err, e)
		}
		return strings.Join(strings.Fields(o), " "), e
	}
	// How long a TAB waits, logged (never asserted): one process start and one request.
	start := time.Now()
	complete("network", "rm", "")
	t.Logf("berth __complete network rm '' with the daemon: %v", time.Since(start))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "rm", ""}, "app back bridge host none :4"},
		{[]string{"network", "rm", "b"}, "back bridge :4"},
		{[]string{"network", "inspect", "app", "b"}, "back bridge :4"},
		{[]string{"network", "connect", "back", ""}, "db web worker :4"},
		{[]string{"network", "disconnect", "app", ""}, "db web :4"},
		{[]string{"sandbox", "rm", "w"}, "web worker :4"},
		{[]string{"exec", "d"}, "db :4"},
		{[]string{"sandbox", "create", "--network", "a"}, "app :4"},
		{[]string{"sandbox", "create", "--network", "container:"}, "container:db container:web container:worker :4"},
	} {
		if got, e := complete(c.args...); got != c.want {
			t.Errorf("berth __complete %s: %q; want %q (stderr %q)", strings.Join(c.args, " "), got, c.want, e)
		}
	}

	d.stop()
	start = time.Now()
	got, e := complete("network", "rm", "")
	t.Logf("berth __complete network rm '' without a daemon: %v", time.Since(start))
	if got != ":1" { // as docker 28 answers without its daemon
		t.Errorf("berth __complete network rm '' without a daemon: %q; want only the directive :1", got)
	}
	if strings.TrimSpace(e) != "Completion ended with directive: ShellCompDirectiveError" {
		t.Errorf("stderr without a daemon: %q; want only cobra's directive line", e)
	}
	d.start() // for the cleanup's removal of networks and sandboxes
}
