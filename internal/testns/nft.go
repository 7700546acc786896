package testns

import (
	"slices"
	"strings"
)

// SortedSets puts the elements of each set in an nft listing on one line, sorted, so two
// listings of the same ruleset compare equal: nft lists hash sets in the kernel's order,
// which a rebuild changes, and wraps long lists.
func SortedSets(listing string) string {
	var out []string
	lines := strings.Split(listing, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		start := strings.Index(l, "elements = { ")
		if start < 0 {
			out = append(out, l)
			continue
		}
		body := l[start+len("elements = { "):]
		for !strings.HasSuffix(body, "}") && i+1 < len(lines) {
			i++
			body += " " + strings.TrimSpace(lines[i])
		}
		var elems []string
		for _, e := range strings.Split(strings.TrimSuffix(body, "}"), ",") {
			if e = strings.TrimSpace(e); e != "" {
				elems = append(elems, e)
			}
		}
		slices.Sort(elems)
		out = append(out, l[:start]+"elements = { "+strings.Join(elems, ", ")+" }")
	}
	return strings.Join(out, "\n")
}
