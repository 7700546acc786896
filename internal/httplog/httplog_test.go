package httplog

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandler: one line per request, at the level its status and method give, with the
// error the handler answered and the caller's attributes first; Flush reaches the writer.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := Handler(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			SetErr(w, errors.New("disk on fire"))
			WriteJSON(w, http.StatusInternalServerError, map[string]string{"message": FirstLine("disk on fire\nmore")})
		case "/stream":
			w.Write([]byte("x"))
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush through the recorder: %v", err)
			}
		}
	}), "api", "test")
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/fail", `level=ERROR msg=request api=test method=POST path=/fail status=500`},
		{"GET", "/stream", `level=DEBUG msg=request api=test method=GET path=/stream status=200`},
		{"DELETE", "/other", `level=INFO msg=request api=test method=DELETE path=/other status=200`},
	} {
		buf.Reset()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		line := buf.String()
		if !strings.Contains(line, tc.want) || strings.Count(line, "\n") != 1 {
			t.Errorf("%s %s logged %q, want one line with %q", tc.method, tc.path, line, tc.want)
		}
		if tc.path == "/fail" {
			if !strings.Contains(line, `err="disk on fire"`) {
				t.Errorf("the handler's error is not logged: %q", line)
			}
			if got := rec.Body.String(); got != `{"message":"disk on fire"}`+"\n" {
				t.Errorf("body %q", got)
			}
		}
		if tc.path == "/stream" && !rec.Flushed {
			t.Error("stream not flushed")
		}
	}
}
