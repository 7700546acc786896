package daemon

// FuzzDecodeBody: the API's request decoding on arbitrary bodies. It must never panic; it accepts exactly one JSON value of the request
// type, with known fields only, at most maxBody bytes, and answers everything else 400
// with a one-line message. Seeds (f.Add and testdata/fuzz/FuzzDecodeBody/) run as normal
// tests.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"berth/api"
)

// requestTypes are the bodies the API decodes, picked by the fuzzer's kind byte.
var requestTypes = []func() any{
	func() any { return new(api.NetworkCreate) },
	func() any { return new(api.SandboxCreate) },
	func() any { return new(api.NetworkConnect) },
	func() any { return new(api.NetworkDisconnect) },
	func() any { return new(api.SandboxRename) },
}

// A pad byte of padMin or more asks for the body to be padded with whitespace to within a
// few bytes of maxBody (the low bits pick where), so both sides of the size limit are
// fuzzed; it is rare, because each such run moves a megabyte.
const padMin = 0xf0

// strictDecode is an independent statement of what decodeBody must accept: a JSON value
// of the type with known fields only, followed by JSON whitespace only.
func strictDecode(body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false
	}
	rest := body[dec.InputOffset():]
	return len(bytes.Trim(rest, " \t\r\n")) == 0
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range []struct {
		kind uint8
		body string
	}{
		{0, `{"Name":"app","Subnets":["10.1.0.0/24"],"Options":{"com.docker.network.bridge.name":"br0"}}`},
		{1, `{"Name":"web","Networks":["app"],"Aliases":["www"],"ExtraHosts":["h:1.2.3.4"],"Dns":["8.8.8.8"]}`},
		{2, `{"Container":"web","Aliases":["a"],"IPv4Address":"10.1.0.9"}`},
		{3, `{"Container":"web","Force":true}`},
		{4, `{"Name":"new"}`},
		{4, `{"name":"case-insensitive match"}`},
		{0, ``},
		{0, `   `},
		{0, `{`},
		{0, `{"Name":"a"`},
		{0, `{"Name":"a"} {"Name":"b"}`},
		{0, `{"Name":"a"}]`},
		{0, `{"Name":"a"}` + "\n"},
		{0, `{"Nmae":"a"}`},
		{1, `{"Networks":"app"}`},
		{1, `{"Name":1}`},
		{2, `null`},
		{3, `[]`},
		{4, `"x"`},
		{4, `{"Name":"\u0000\n"}`},
		{4, "{\"Name\":\"\xff\"}"},
		{0, `{"Labels":{"a":"b","a":"c"}}`},
		{1, `{"Name":"a","Name":"b"}`},
	} {
		f.Add(s.kind, uint8(0), []byte(s.body))
	}
	// Around the size limit: exactly maxBody (accepted), one byte over with the whitespace
	// after or before the value, an unfinished value one byte over.
	f.Add(uint8(0), uint8(padMin|4), []byte(`{"Name":"a"}`))
	f.Add(uint8(0), uint8(padMin|5), []byte(`{"Name":"a"}`))
	f.Add(uint8(1), uint8(padMin|0x08|5), []byte(`{}`))
	f.Add(uint8(0), uint8(padMin|5), []byte(`{"Name":"a"`))
	f.Fuzz(func(t *testing.T, kind, pad uint8, body []byte) {
		newV := requestTypes[int(kind)%len(requestTypes)]
		if pad >= padMin {
			// Total length maxBody-4 … maxBody+3: whitespace before or after the value.
			n := maxBody - len(body) + int(pad%8) - 4
			if n > 0 {
				ws := bytes.Repeat([]byte{' '}, n)
				if pad&0x08 != 0 {
					body = append(ws, body...)
				} else {
					body = append(append([]byte{}, body...), ws...)
				}
			}
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, api.Version+"/networks", bytes.NewReader(body))
		v := newV()
		ok := decodeBody(w, r, v)

		want := newV()
		wantOK := len(body) <= maxBody && strictDecode(body, want)
		if ok != wantOK {
			t.Fatalf("decodeBody(%s, %d bytes %.200q) = %v; want %v (answer %d %q)",
				reflect.TypeOf(v).Elem().Name(), len(body), body, ok, wantOK, w.Code, w.Body.String())
		}
		if ok {
			if w.Body.Len() != 0 || w.Code != http.StatusOK {
				t.Errorf("accepted body but answered %d %q", w.Code, w.Body.String())
			}
			if !reflect.DeepEqual(v, want) {
				t.Errorf("decoded %+v; the strict decoder got %+v", v, want)
			}
			return
		}
		if w.Code != http.StatusBadRequest {
			t.Fatalf("refused body answered %d; want 400", w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var e api.Error
		dec := json.NewDecoder(w.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("400 body is not an api.Error: %v", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Errorf("400 body has more than one JSON value")
		}
		if e.Message == "" || strings.ContainsAny(e.Message, "\n\r") {
			t.Errorf("message %q is not one non-empty line", e.Message)
		}
		if !strings.HasPrefix(e.Message, "invalid request body: ") {
			t.Errorf("message %q does not say what was wrong", e.Message)
		}
		if len(e.Message) > 512 {
			t.Errorf("message of %d bytes echoes too much of the body: %.100q…", len(e.Message), e.Message)
		}
		// The reason must be the real one: a body over the limit says so, whatever it
		// holds after the first value.
		if len(body) > maxBody && strictDecode(bytes.TrimRight(body, " \t\r\n"), newV()) &&
			!strings.Contains(e.Message, "larger than") {
			t.Errorf("over-long body (%d bytes) refused with %q; want the size reason", len(body), e.Message)
		}
	})
}
