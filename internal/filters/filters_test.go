package filters

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want Args
		err  string
	}{
		{in: nil, want: Args{}},
		{in: []string{"name=web"}, want: Args{"name": {"web"}}},
		{in: []string{"name=web", "name=db", "name=web"}, want: Args{"name": {"web", "db"}}},
		{in: []string{"label=a=b"}, want: Args{"label": {"a=b"}}},
		{in: []string{"dangling="}, want: Args{"dangling": {""}}},
		{in: []string{""}, want: Args{}},
		// docker 20.10: `docker network ls -f ' NAME = bridge '` lists bridge (the CLI trims
		// and lower-cases the key).
		{in: []string{" NAME = bridge "}, want: Args{"name": {"bridge"}}},
		// docker 20.10: `docker network ls -f foo`: invalid argument "foo" for "-f, --filter"
		// flag: bad format of filter (expected name=value)
		{in: []string{"foo"}, err: "bad format of filter (expected name=value)"},
	} {
		got, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Parse(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestFromJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Args
		err  string
	}{
		{in: "", want: Args{}},
		{in: "{}", want: Args{}},
		{in: `{"name":{"web":true}}`, want: Args{"name": {"web"}}},
		{in: `{"name":{"web":true,"db":true},"label":{"a=1":true}}`, want: Args{"name": {"db", "web"}, "label": {"a=1"}}},
		{in: `{"name":{"web":false}}`, want: Args{"name": {"web"}}},
		// legacy (API < 1.22): docker 20.10 answers filters={"name":["bri"]} with bridge.
		{in: `{"name":["web"]}`, want: Args{"name": {"web"}}},
		{in: `{"name":["web","web","db"]}`, want: Args{"name": {"web", "db"}}},
		// docker 20.10: filters={"name":[]} lists every network (the key has no value).
		{in: `{"name":[]}`, want: Args{"name": {}}},
		{in: `bad`, err: `invalid filter: filters is neither {"key":{"value":true}} nor {"key":["value"]}: invalid character 'b' looking for beginning of value`},
		{in: `{"name":"web"}`, err: `invalid filter: filters is neither {"key":{"value":true}} nor {"key":["value"]}: json: cannot unmarshal string into Go value of type []string`},
	} {
		got, err := FromJSON(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !Invalid(err) {
				t.Errorf("FromJSON(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("FromJSON(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	if got := (Args{}).JSON(); got != "" {
		t.Errorf("empty JSON = %q, want \"\"", got)
	}
	a := Args{"name": {"web", "db"}, "label": {"a=1"}}
	const want = `{"label":{"a=1":true},"name":{"db":true,"web":true}}`
	if got := a.JSON(); got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
	back, err := FromJSON(a.JSON())
	if err != nil || !reflect.DeepEqual(back, Args{"name": {"db", "web"}, "label": {"a=1"}}) {
		t.Errorf("FromJSON(JSON) = %v, %v", back, err)
	}
}

func TestValidate(t *testing.T) {
	a := Args{"name": {"x"}, "zz": {"y"}, "foo": {"z"}}
	// docker 20.10: GET /networks?filters={"foo":["x"]} -> 400 {"message":"Invalid filter 'foo'"}
	err := a.Validate("name", "id")
	if err == nil || err.Error() != "Invalid filter 'foo'" || !Invalid(err) {
		t.Errorf("Validate = %v, want Invalid filter 'foo'", err)
	}
	if err := a.Validate("name", "zz", "foo"); err != nil {
		t.Errorf("Validate(all keys) = %v", err)
	}
	if err := (Args{}).Validate(); err != nil {
		t.Errorf("empty Validate = %v", err)
	}
}

func TestMatchers(t *testing.T) {
	a := Args{"name": {"web", "^db$", "["}, "id": {"1339"}, "label": {"a", "b=2"}, "none": {}}
	for _, tc := range []struct {
		what string
		got  bool
		want bool
	}{
		{"absent key exact", a.ExactMatch("driver", "x"), true},
		{"empty key exact", a.ExactMatch("none", "x"), true},
		{"exact", a.ExactMatch("name", "web"), true},
		{"exact not substring", a.ExactMatch("name", "myweb"), false},
		{"fuzzy prefix", a.FuzzyMatch("id", "1339c005"), true},
		{"fuzzy not infix", a.FuzzyMatch("id", "a1339"), false},
		{"fuzzy absent", a.FuzzyMatch("driver", "x"), true},
		// docker 20.10: network ls -f name=web lists myweb2 and web1 (a regexp, unanchored).
		{"match substring", a.Match("name", "myweb2"), true},
		{"match anchored", a.Match("name", "db"), true},
		{"match anchored miss", a.Match("name", "db2"), false},
		// docker 20.10: network ls -f 'name=[' lists nothing (bad expression: exact only).
		{"match bad regexp", a.Match("name", "x"), false},
		{"match bad regexp exact", a.Match("name", "["), true},
		{"match case", a.Match("name", "WEB"), false},
		// docker 20.10: label=a -f label=b lists only web1 (labels a=1, b): all must match.
		{"kv all", a.MatchKVList("label", map[string]string{"a": "1", "b": "2"}), true},
		{"kv wrong value", a.MatchKVList("label", map[string]string{"a": "1", "b": "3"}), false},
		{"kv missing", a.MatchKVList("label", map[string]string{"a": "1"}), false},
		{"kv no labels", a.MatchKVList("label", nil), false},
		{"kv absent key", a.MatchKVList("nolabel", nil), true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}
