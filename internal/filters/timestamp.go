package filters

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Layouts Docker reads --since, --until and the until filter in, besides RFC 3339.
const (
	rfc3339Local     = "2006-01-02T15:04:05"
	rfc3339NanoLocal = "2006-01-02T15:04:05.999999999"
	dateWithZone     = "2006-01-02Z07:00"
	dateLocal        = "2006-01-02"
)

// Timestamp reads a time the way Docker reads since, until and the prune filter until: a Go
// duration before now ("24h", "10m"), an RFC 3339 date or time with or without a zone
// (without one: now's zone), or unix seconds with optional fraction ("1600000000.5"). The
// errors are Docker's.
func Timestamp(value string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(value); value != "0" && err == nil {
		return now.Add(-d), nil
	}
	// A Z, a + or three dashes carry a zone; anything else is in now's.
	local := !strings.ContainsAny(value, "zZ+") && strings.Count(value, "-") != 3
	var layout string
	switch {
	case strings.Contains(value, "."):
		layout = time.RFC3339Nano
		if local {
			layout = rfc3339NanoLocal
		}
	case strings.Contains(value, "T"):
		colons := strings.Count(value, ":")
		if !local && !strings.ContainsAny(value, "zZ") && colons > 0 {
			colons-- // the one in a +07:00 offset
		}
		layouts := [3]string{"2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00", time.RFC3339}
		if local {
			layouts = [3]string{"2006-01-02T15", "2006-01-02T15:04", rfc3339Local}
		}
		layout = layouts[min(colons, 2)]
	case local:
		layout = dateLocal
	default:
		layout = dateWithZone
	}
	var t time.Time
	var err error
	if local {
		t, err = time.ParseInLocation(layout, value, time.FixedZone(now.Zone()))
	} else {
		t, err = time.Parse(layout, value)
	}
	if err == nil {
		return t, nil
	}
	if strings.Contains(value, "-") {
		return time.Time{}, err // a date that did not parse: Go's words say where
	}
	sec, nsec, uerr := unixTimestamp(value)
	if uerr != nil {
		return time.Time{}, fmt.Errorf("failed to parse value as time or duration: %q", value)
	}
	return time.Unix(sec, nsec), nil
}

// unixTimestamp reads SECONDS[.FRACTION].
func unixTimestamp(value string) (sec, nsec int64, err error) {
	s, frac, ok := strings.Cut(value, ".")
	if sec, err = strconv.ParseInt(s, 10, 64); err != nil || !ok {
		return sec, 0, err
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	if nsec, err = strconv.ParseInt(frac, 10, 64); err != nil || nsec < 0 {
		return 0, 0, fmt.Errorf("bad fraction %q", frac)
	}
	return sec, nsec * int64(math.Pow10(9-len(frac))), nil
}
