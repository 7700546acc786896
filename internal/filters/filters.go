// Package filters is Docker's --filter, the one implementation for the berth CLI, the berth
// API (/v1) and the Docker Engine API front end.
//
// A filter is a set of KEY=VALUE pairs where a key may repeat. It travels in the `filters`
// query parameter as JSON, in Docker's two forms: the current one, {"name":{"web":true}},
// and the legacy one of API versions before 1.22, {"name":["web"]}. The semantics follow
// moby's api/types/filters: values of one key are alternatives (any may match), different
// keys must all match, and a key that is absent does not filter.
package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Args maps a filter key to its values. The values of a key form a set: Add keeps one copy
// of each, in the order first seen.
type Args map[string][]string

// Error is a filter that is unknown or has a bad value. Its text is dockerd 20.10's (the
// Engine API 1.41 that berth serves): "Invalid filter 'KEY'" or "Invalid filter
// 'KEY=[VALUES]'" (later versions write "invalid" in lower case).
type Error struct {
	Key    string
	Values []string // nil when the key itself is wrong
	Reason string   // set for a parameter that is not JSON: Docker says only "invalid filter"
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return "invalid filter: " + e.Reason
	}
	msg := "Invalid filter"
	if e.Key != "" {
		msg += " '" + e.Key
		if e.Values != nil {
			// Docker prints the values with %s of a []string: "dangling=[maybe]".
			msg = fmt.Sprintf("%s=%s", msg, e.Values)
		}
		msg += "'"
	}
	return msg
}

// Invalid reports whether err is a bad filter (unknown key, bad value, bad JSON): a client
// error, which the HTTP front ends answer with 400.
func Invalid(err error) bool {
	var fe *Error
	return errors.As(err, &fe)
}

// Parse reads the CLI's repeatable --filter KEY=VALUE, as Docker's CLI does: the key is
// trimmed and lower-cased, the value trimmed, an empty item ignored.
func Parse(list []string) (Args, error) {
	a := Args{}
	for _, item := range list {
		if item == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		if !ok {
			return nil, errors.New("bad format of filter (expected name=value)")
		}
		a.Add(strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value))
	}
	return a, nil
}

// FromJSON decodes the filters query parameter in either of Docker's forms. An empty
// string is no filter.
func FromJSON(s string) (Args, error) {
	a := Args{}
	if s == "" {
		return a, nil
	}
	var current map[string]map[string]bool
	if err := json.Unmarshal([]byte(s), &current); err == nil {
		for key, set := range current {
			values := make([]string, 0, len(set))
			for v := range set { // Docker keeps a value whatever its bool
				values = append(values, v)
			}
			sort.Strings(values) // a JSON object has no order; keep results repeatable
			a[key] = values
		}
		return a, nil
	}
	var legacy map[string][]string
	if err := json.Unmarshal([]byte(s), &legacy); err != nil {
		// Docker says only "invalid filter"; berth adds why.
		return nil, &Error{Reason: "filters is neither {\"key\":{\"value\":true}} nor {\"key\":[\"value\"]}: " + err.Error()}
	}
	for key, values := range legacy {
		for _, v := range values {
			a.Add(key, v)
		}
		if _, ok := a[key]; !ok {
			a[key] = []string{} // {"key":[]}: the key is there, with no value
		}
	}
	return a, nil
}

// JSON encodes a in Docker's current form, "" when a is empty: what a client sends.
func (a Args) JSON() string {
	if len(a) == 0 {
		return ""
	}
	m := make(map[string]map[string]bool, len(a))
	for key, values := range a {
		set := make(map[string]bool, len(values))
		for _, v := range values {
			set[v] = true
		}
		m[key] = set
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic("filters: encoding a map of strings: " + err.Error()) // cannot happen
	}
	return string(b)
}

// Add adds value to key's set.
func (a Args) Add(key, value string) {
	if !slices.Contains(a[key], value) {
		a[key] = append(a[key], value)
	}
}

// Keys returns the keys, sorted.
func (a Args) Keys() []string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Validate returns Docker's error for the first key (in sorted order) not in allowed.
func (a Args) Validate(allowed ...string) error {
	for _, key := range a.Keys() {
		if !slices.Contains(allowed, key) {
			return &Error{Key: key}
		}
	}
	return nil
}

// Get returns key's values (nil when absent).
func (a Args) Get(key string) []string { return a[key] }

// Contains reports whether key is present, even with no value.
func (a Args) Contains(key string) bool {
	_, ok := a[key]
	return ok
}

// ExactMatch reports whether source equals one of key's values; true when key has none.
func (a Args) ExactMatch(key, source string) bool {
	values := a[key]
	return len(values) == 0 || slices.Contains(values, source)
}

// FuzzyMatch reports whether source equals, or starts with, one of key's values; true when
// key has none. Docker matches IDs this way (a short ID is a prefix).
func (a Args) FuzzyMatch(key, source string) bool {
	if a.ExactMatch(key, source) {
		return true
	}
	for _, prefix := range a[key] {
		if strings.HasPrefix(source, prefix) {
			return true
		}
	}
	return false
}

// Match reports whether source equals one of key's values or matches it as an unanchored
// regular expression (so "web" matches "myweb2"); true when key has none. Docker's network
// name and id filters match this way. A value that is not a valid expression matches only
// exactly, as in Docker.
func (a Args) Match(key, source string) bool {
	if a.ExactMatch(key, source) {
		return true
	}
	for _, expr := range a[key] {
		if ok, err := regexp.MatchString(expr, source); err == nil && ok {
			return true
		}
	}
	return false
}

// MatchKVList reports whether every value of key, KEY or KEY=VALUE, is in labels: KEY
// needs the label set, KEY=VALUE needs it set to VALUE. True when key has no value.
func (a Args) MatchKVList(key string, labels map[string]string) bool {
	values := a[key]
	if len(values) == 0 {
		return true
	}
	for _, value := range values {
		k, v, hasValue := strings.Cut(value, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}
