package resolver

// Fuzz targets for the pure rendering and lookup paths (issue 5, "Tooling"). The seeds
// (f.Add and testdata/fuzz/<FuzzName>/) run as normal tests; `go test -fuzz FuzzName`
// explores further. Lists of strings are passed as one string split at listSep, a byte that
// never occurs in valid UTF-8 (the API only ever delivers valid UTF-8), so an element may
// still hold any other byte: NUL, '\n', '\r'.

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"berth/store"
)

const listSep = "\xff"

// Known bugs, reported from the issue 5 fuzzing and not yet fixed. While one is true the
// target skips the inputs that reach it, so `-fuzz` keeps exploring instead of stopping at
// the first known failure. Set it to false with the fix: the seeds under testdata/ then
// guard the regression.
const (
	// resolver.Hosts (splitExtraHost) writes an --add-host value with a line break inside as
	// several lines. netmgr.checkExtraHost lets one through in an IPv6 zone
	// ("h:::1%\n10.9.9.9 evil"), so this is reachable from the API.
	knownBugHostsLineBreak = false
	// resolver.ResolvConf writes invalid --dns values verbatim into its "# Invalid
	// nameservers" comment, so "x\nnameserver 6.6.6.6" adds a nameserver line. Not reachable
	// today (netmgr and the daemon accept only addresses without zone), hence defence in depth.
	knownBugResolvConfCommentLineBreak = false
)

// hasLineBreak reports whether any element of list holds '\n' or '\r'.
func hasLineBreak(list []string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.ContainsAny(s, "\n\r") })
}

// controlBytes reports whether s holds NUL or CR, the bytes a generated line must not
// introduce on its own.
func controlBytes(s string) bool { return strings.ContainsAny(s, "\x00\r") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, listSep)
}

// fuzzWorld is a small fixed topology covering every kind of sandbox the renderers and
// Lookup distinguish.
type fuzzWorld struct {
	st        *store.Store
	sandboxes []*store.Sandbox // indexed by the fuzzer's "which" byte
	embedded  map[string]bool  // sandbox ID -> gets nameserver 127.0.0.11
}

func newFuzzWorld(t testing.TB) *fuzzWorld {
	f := newFixture(t)
	bridge, none, host := f.predefined()
	_ = none
	_ = host
	app := f.network("app", "10.1.0.0/24", "fd00:1::/64")
	back := f.internal("back", "10.2.0.0/24")
	other := f.network("other", "10.3.0.0/24")

	web := f.sandbox("web", hostname("web.example.com"))
	f.connect(web, app, ep{ip4: "10.1.0.2", ip6: "fd00:1::2", aliases: []string{"www"},
		links: []store.Link{{Target: "db", Alias: "dbalias"}}})
	db := f.sandbox("db")
	f.connect(db, app, ep{ip4: "10.1.0.3", ip6: "fd00:1::3", aliases: []string{"database", "shared"}})
	f.connect(db, back, ep{ip4: "10.2.0.3", aliases: []string{"shared"}})
	lonely := f.sandbox("lonely")
	f.connect(lonely, back, ep{ip4: "10.2.0.4", aliases: []string{"shared"}})
	iso := f.sandbox("iso")
	f.connect(iso, other, ep{ip4: "10.3.0.2", aliases: []string{"www"}})
	old := f.sandbox("old")
	f.connect(old, bridge, ep{ip4: "172.17.0.3"})
	legacy := f.sandbox("legacy")
	f.connect(legacy, bridge, ep{ip4: "172.17.0.2", links: []store.Link{{Target: "old", Alias: "o"}}})
	nonesb := f.sandbox("nonesb", mode(store.ModeNone, ""))
	hostsb := f.sandbox("hostsb", mode(store.ModeHost, ""))
	shared := f.sandbox("shared-web", mode(store.ModeContainer, web.ID))
	half := f.sandbox("half", creating)
	f.connect(half, app, ep{ip4: "10.1.0.9", aliases: []string{"www"}})
	// Another host's sandbox on app (a remote endpoint: no sandbox record here).
	f.remote("hostB", "cache", app, "10.1.0.7", "shared", "www")

	return &fuzzWorld{
		st:        f.st,
		sandboxes: []*store.Sandbox{web, db, lonely, iso, old, legacy, nonesb, hostsb, shared, half},
		embedded:  map[string]bool{web.ID: true, db.ID: true, lonely.ID: true, iso.ID: true, shared.ID: true, half.ID: true},
	}
}

func (w *fuzzWorld) pick(which uint8) *store.Sandbox {
	return w.sandboxes[int(which)%len(w.sandboxes)]
}

// isSpaceASCII is musl's isspace: the widest set a stub resolver treats as a separator.
func isSpaceASCII(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// directive returns the keyword a libc stub resolver would read on line (glibc: keyword then
// ' ' or '\t'; musl: keyword then isspace), or "" for comments and other lines.
func directive(line string) string {
	line = strings.TrimLeft(line, " \t")
	for _, kw := range []string{"nameserver", "search", "domain", "options"} {
		if strings.HasPrefix(line, kw) && len(line) > len(kw) && isSpaceASCII(line[len(kw)]) {
			return kw
		}
	}
	return ""
}

// maxGeneratedLine bounds a line berth writes itself: comments list at most a few servers
// and the invalid --dns values, so a line never grows beyond the input it came from.
func maxGeneratedLine(inputs ...string) int {
	n := 256
	for _, s := range inputs {
		n += len(s) + 4 // quoting and separators
	}
	return n
}

func FuzzResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 1.1.1.1\nsearch example.com\noptions ndots:2\n"), "", "", "", uint8(0))
	f.Add([]byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"), "", "", "", uint8(5))
	f.Add([]byte("# comment\n; other\nnameserver ::1\nnameserver fe80::1%eth0\nlookup file bind\n"), "8.8.8.8"+listSep+"[::1]:5353", "a.b"+listSep+".", "ndots:x"+listSep+"rotate", uint8(1))
	f.Add([]byte("nameserver 127.0.0.11\r\ndomain corp\r\noptions ndots:-1 ndots:\r\n"), "127.0.0.11", "", "", uint8(2))
	f.Add([]byte("\x00nameserver 6.6.6.6\nnameserver\n\nsortlist 10.0.0.0\n"), "", "", "", uint8(6))
	f.Add([]byte("nameserver 9.9.9.9\n"), "bad", "", "", uint8(7))
	f.Add([]byte{}, "", "", "ndots:0", uint8(8))
	w := newFuzzWorld(f)
	f.Fuzz(func(t *testing.T, data []byte, dns, search, opts string, which uint8) {
		sb := w.pick(which)
		host := HostConfig{ResolvConfPath: "/etc/resolv.conf", ResolvConf: data,
			DNS: splitList(dns), DNSSearch: splitList(search), DNSOptions: splitList(opts)}
		if knownBugResolvConfCommentLineBreak && hasLineBreak(host.DNS) {
			t.Skip("known bug: line break in an invalid --dns value")
		}
		// berth never adds NUL or CR of its own; it may carry one the input had (the
		// callers' validation is checked against rendering in netmgr's FuzzValidatedFiles).
		inputControl := controlBytes(string(data)) || controlBytes(dns) || controlBytes(search) || controlBytes(opts)
		snap := w.st.Snapshot()
		got := ResolvConf(snap, sb.ID, host)
		if again := ResolvConf(snap, sb.ID, host); !bytes.Equal(got, again) {
			t.Fatalf("rendering twice differs:\n%q\n%q", got, again)
		}
		if len(got) == 0 || got[len(got)-1] != '\n' {
			t.Fatalf("output does not end in a newline: %q", got)
		}
		// Lines copied verbatim from the host file (unknown directives) are the host's
		// business; every other line is berth's and must be clean.
		hostLines := map[string]bool{}
		for _, l := range strings.Split(string(data), "\n") {
			hostLines[strings.TrimSuffix(l, "\r")] = true
		}
		limit := maxGeneratedLine(string(data), dns, search, opts)
		var nameservers []string
		counts := map[string]int{}
		for _, line := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
			if kw := directive(line); kw != "" {
				counts[kw]++
				if kw == "nameserver" {
					nameservers = append(nameservers, line)
				}
			}
			if hostLines[line] && directive(line) == "" && !strings.HasPrefix(line, "#") {
				continue
			}
			if controlBytes(line) && !inputControl {
				t.Errorf("generated line holds NUL or CR the input did not have: %q\nfull output:\n%s", line, got)
			}
			if len(line) > limit {
				t.Errorf("generated line of %d bytes (limit %d): %.80q…", len(line), limit, line)
			}
		}
		if counts["search"]+counts["domain"] > 1 || counts["options"] > 1 {
			t.Errorf("more than one search/options line (%v):\n%s", counts, got)
		}
		if w.embedded[sb.ID] {
			if len(nameservers) != 1 || nameservers[0] != "nameserver 127.0.0.11" {
				t.Fatalf("embedded sandbox %s: nameserver lines %q; want exactly [\"nameserver 127.0.0.11\"]\nfull output:\n%s",
					sb.Name, nameservers, got)
			}
			return
		}
		for _, l := range nameservers {
			fields := strings.Fields(l)
			if len(fields) != 2 {
				t.Errorf("nameserver line %q is not 'nameserver ADDR'", l)
				continue
			}
			a, err := netip.ParseAddr(fields[1])
			if err != nil {
				t.Errorf("nameserver line %q: %v", l, err)
				continue
			}
			// A legacy sandbox talks to its nameservers itself: a host loopback one cannot
			// work there (only an explicit --dns is written unfiltered).
			if sb.Mode != store.ModeHost && len(host.DNS) == 0 && a.IsLoopback() {
				t.Errorf("legacy sandbox %s got loopback nameserver %s", sb.Name, a)
			}
		}
		// Without --dns a legacy sandbox always gets something to ask (8.8.8.8 at worst);
		// with --dns the caller has validated the values and they are written as given.
		if sb.Mode != store.ModeHost && len(host.DNS) == 0 && len(nameservers) == 0 {
			t.Errorf("legacy sandbox %s got no nameserver at all:\n%s", sb.Name, got)
		}
	})
}

func FuzzHosts(f *testing.F) {
	f.Add("db:10.0.0.5", "", uint8(0))
	f.Add("a=1.2.3.4"+listSep+"v6:::1"+listSep+"br:[fd00::1]"+listSep+" sp : 5.6.7.8 ", "host.example.com", uint8(1))
	f.Add("nocolon"+listSep+":1.2.3.4"+listSep+"x:"+listSep+"h:host-gateway", "", uint8(2))
	f.Add("h:fe80::1%eth0", "h", uint8(3))
	f.Add("", "", uint8(4))
	f.Fuzz(func(t *testing.T, extra, hostName string, which uint8) {
		w := newFuzzWorld(t)
		base := w.pick(which)
		if base.Mode == store.ModeContainer {
			base = w.sandboxes[0]
		}
		// Give the picked sandbox the fuzzed --add-host list and hostname.
		sb := base.Copy()
		sb.ExtraHosts = splitList(extra)
		if knownBugHostsLineBreak && hasLineBreak(sb.ExtraHosts) {
			t.Skip("known bug: line break in an --add-host value")
		}
		// The hostname is validated by netmgr (checkDNSName) before it is stored: only
		// fuzz the shapes it can have.
		if strings.Trim(hostName, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == "" {
			sb.Hostname = hostName
		}
		if err := w.st.Update(func(tx *store.Tx) error { return tx.PutSandbox(sb) }); err != nil {
			t.Skip() // the store refused the record: not a rendering question
		}
		snap := w.st.Snapshot()
		got := Hosts(snap, sb.ID)
		if again := Hosts(snap, sb.ID); !bytes.Equal(got, again) {
			t.Fatalf("rendering twice differs:\n%q\n%q", got, again)
		}
		if !bytes.HasPrefix(got, []byte(defaultHosts)) {
			t.Fatalf("output does not start with the default lines:\n%s", got)
		}
		lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
		// Expected line count: defaults, one per usable --add-host, links, own addresses.
		want := strings.Count(defaultHosts, "\n") + len(legacyLinks(snap, sb))
		for _, h := range sb.ExtraHosts {
			if _, _, ok := splitExtraHost(h); ok {
				want++
			}
		}
		for _, e := range snap.SandboxEndpoints(sb.ID) {
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if a.IsValid() {
					want++
				}
			}
		}
		if len(lines) != want {
			t.Fatalf("%d lines; want %d (a line break came from the input?)\nExtraHosts %q, Hostname %q\n%s",
				len(lines), want, sb.ExtraHosts, sb.Hostname, got)
		}
		for i, line := range lines {
			ip, names, ok := strings.Cut(line, "\t")
			if !ok || ip == "" || strings.TrimSpace(names) == "" {
				t.Errorf("line %d %q is not IP<TAB>NAMES", i, line)
			}
		}
		// Own lines: every address of the sandbox maps to its hostname (or name).
		for _, e := range snap.SandboxEndpoints(sb.ID) {
			if e.IPv4.IsValid() && !slices.Contains(lines, e.IPv4.String()+"\t"+hostsNames(sb)) {
				t.Errorf("no own line for %s in\n%s", e.IPv4, got)
			}
		}
	})
}

func FuzzLookup(f *testing.F) {
	for _, s := range []struct {
		q  string
		t  uint16
		sb uint8
	}{
		{"db", TypeA, 0}, {"DB.app.", TypeAAAA, 0}, {"www", TypeA, 3}, {"shared", TypeA, 1},
		{"dbalias", TypeA, 0}, {"iso", TypeA, 0}, {"half", TypeA, 0}, {"web.APP", TypeMX, 1},
		{"2.0.1.10.in-addr.arpa.", TypePTR, 1}, {"3.0.2.10.in-addr.arpa", TypePTR, 0},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.", TypePTR, 1},
		{"old", TypeA, 5}, {"", TypeA, 0}, {".", TypeA, 0}, {"a..b", TypeA, 0}, {"web", 255, 1},
	} {
		f.Add(s.q, s.t, s.sb, false)
		f.Add(s.q, s.t, s.sb, true)
	}
	w := newFuzzWorld(f)
	snap := w.st.Snapshot()
	f.Fuzz(func(t *testing.T, qname string, qtype uint16, which uint8, ndots bool) {
		sb := w.pick(which)
		res := lookupNDots(snap, sb.ID, qname, qtype, ndots)
		checkLookup(t, snap, sb, qname, qtype, res)
		// Lookups are case-insensitive (ASCII, as DNS is).
		if up := upperASCII(qname); up != qname {
			res2 := lookupNDots(snap, sb.ID, up, qtype, ndots)
			if res2.Kind != res.Kind || res2.Network != res.Network || !sameAddrs(res.Addrs, res2.Addrs) ||
				!strings.EqualFold(res.Target, res2.Target) {
				t.Errorf("%q → %+v but %q → %+v", qname, res, up, res2)
			}
		}
	})
}

// checkLookup asserts the isolation properties of one answer.
func checkLookup(t *testing.T, snap *store.Snapshot, sb *store.Sandbox, qname string, qtype uint16, res Result) {
	t.Helper()
	asker, ok := effective(snap, sb.ID)
	if !ok {
		t.Fatalf("fixture sandbox %s has no effective sandbox", sb.Name)
	}
	shared := map[string]*store.Network{} // user networks the asker is on, by ID
	for _, e := range snap.SandboxEndpoints(asker.ID) {
		if nw, err := snap.Network(e.NetworkID); err == nil && nw.UserDefined() {
			shared[nw.ID] = nw
		}
	}
	if res.Kind != Found && (len(res.Addrs) > 0 || res.Target != "") {
		t.Fatalf("%s asks %q/%d: kind %v with answers %+v", sb.Name, qname, qtype, res.Kind, res)
	}
	if res.Kind != Found {
		if res.Kind == NoData && len(shared) == 0 && res.Source != srcNdots {
			t.Errorf("%s (no user network) got NoData from %q for %q", sb.Name, res.Network, qname)
		}
		return
	}
	var answering *store.Network
	for _, nw := range shared {
		if nw.Name == res.Network {
			answering = nw
		}
	}
	if answering == nil {
		t.Fatalf("%s asks %q/%d: answered by network %q, which it is not on (%+v)", sb.Name, qname, qtype, res.Network, res)
	}
	switch qtype {
	case TypeA, TypeAAAA:
		if len(res.Addrs) == 0 {
			t.Fatalf("%s asks %q: Found without addresses", sb.Name, qname)
		}
		seen := map[netip.Addr]bool{}
		for _, a := range res.Addrs {
			if seen[a] {
				t.Errorf("%s asks %q: %s answered twice", sb.Name, qname, a)
			}
			seen[a] = true
			if a.Is4() != (qtype == TypeA) {
				t.Errorf("%s asks %q type %d: got %s", sb.Name, qname, qtype, a)
			}
			holders := snap.EndpointsByIP(a)
			okHolder := false
			for _, h := range holders {
				if h.NetworkID == answering.ID && isVisible(snap, h) {
					okHolder = true
				}
			}
			if !okHolder {
				t.Errorf("%s asks %q: %s is not held by a visible endpoint on %s", sb.Name, qname, a, answering.Name)
			}
		}
	case TypePTR:
		if !strings.HasSuffix(res.Target, "."+answering.Name+".") {
			t.Errorf("%s asks %q: PTR target %q not on network %s", sb.Name, qname, res.Target, answering.Name)
		}
	default:
		t.Errorf("%s asks %q type %d: Found for a type the resolver does not answer", sb.Name, qname, qtype)
	}
}

func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}
