package filters

import (
	"testing"
	"time"
)

func TestTimestamp(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "-1h", want: now.Add(time.Hour)},
		{in: "10m30s", want: now.Add(-630 * time.Second)},
		{in: "1600000000", want: time.Unix(1600000000, 0)},
		{in: "1600000000.5", want: time.Unix(1600000000, 500000000)},
		{in: "1600000000.000000001", want: time.Unix(1600000000, 1)},
		{in: "0", want: time.Unix(0, 0)}, // "0" is the epoch, not a zero duration
		{in: "2020-01-01T00:00:00Z", want: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2020-01-01T00:00:00.25Z", want: time.Date(2020, 1, 1, 0, 0, 0, 250000000, time.UTC)},
		{in: "2020-01-01T02:00:00+02:00", want: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
		// Without a zone: now's (CET here).
		{in: "2020-01-01", want: time.Date(2020, 1, 1, 0, 0, 0, 0, now.Location())},
		{in: "2020-01-01T10", want: time.Date(2020, 1, 1, 10, 0, 0, 0, now.Location())},
		{in: "2020-01-01T10:30", want: time.Date(2020, 1, 1, 10, 30, 0, 0, now.Location())},
		{in: "2020-01-01T10:30:05", want: time.Date(2020, 1, 1, 10, 30, 5, 0, now.Location())},
		// docker network prune --filter until=abc: failed to parse value as time or duration: "abc"
		{in: "abc", err: `failed to parse value as time or duration: "abc"`},
		{in: "", err: `failed to parse value as time or duration: ""`},
		{in: "2020-13-01", err: `parsing time "2020-13-01": month out of range`},
	} {
		got, err := Timestamp(tc.in, now)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Timestamp(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("Timestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
