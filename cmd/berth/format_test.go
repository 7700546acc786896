package main

import (
	"bytes"
	"maps"
	"testing"
)

func TestParseKeyValues(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    map[string]string
		wantErr string
	}{
		{in: nil, want: nil},
		{in: []string{"a=b", "c=", "d=e=f", "a=z"}, want: map[string]string{"a": "z", "c": "", "d": "e=f"}},
		{in: []string{"a=b", "noeq"}, wantErr: `invalid opt "noeq": want KEY=VALUE`},
		{in: []string{"=v"}, wantErr: `invalid opt "=v": want KEY=VALUE`},
		{in: []string{" =v"}, wantErr: `invalid opt " =v": want KEY=VALUE`},
	} {
		got, err := parseKeyValues("opt", tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%q: got err %v; want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestPrintListTemplate(t *testing.T) {
	type item struct {
		Name string
		Tags []string
	}
	items := []item{{"a", []string{"x", "y"}}, {"b", nil}}
	tbl := table[item]{header: "NAME", row: func(i item) string { return i.Name }, id: func(i item) string { return "id-" + i.Name }}
	for _, tc := range []struct {
		f    listFormat
		want string
	}{
		{listFormat{format: `{{.Name}}:{{join .Tags ","}}:{{upper .Name}}`}, "a:x,y:A\nb::B\n"},
		{listFormat{format: "json"}, `{"Name":"a","Tags":["x","y"]}` + "\n" + `{"Name":"b","Tags":null}` + "\n"},
		{listFormat{format: "table"}, "NAME\na\nb\n"},
		{listFormat{quiet: true, format: "{{.Nope}}"}, "id-a\nid-b\n"},
	} {
		var b bytes.Buffer
		if err := printList(&b, tc.f, items, tbl); err != nil {
			t.Fatalf("%+v: %v", tc.f, err)
		}
		if b.String() != tc.want {
			t.Errorf("%+v: got %q; want %q", tc.f, b.String(), tc.want)
		}
	}
	var b bytes.Buffer
	if err := printList(&b, listFormat{format: "{{.Nope}}"}, items, tbl); err == nil {
		t.Error("missing field: got no error")
	}
}
