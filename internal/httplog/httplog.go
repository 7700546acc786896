// Package httplog is what berth's two HTTP front ends (the /v1 API and Docker's Engine API)
// share: one log line per request, carrying the error a handler answered with, and the JSON
// answer itself.
package httplog

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Handler logs each request to next once: 5xx at Error (with the error), other mutations at
// Info, reads at Debug, so a default log shows what changed and what failed. attrs go first
// on every line (e.g. "api", "docker").
func Handler(log *slog.Logger, next http.Handler, attrs ...any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		level := slog.LevelInfo
		switch {
		case rec.status >= 500:
			level = slog.LevelError
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			level = slog.LevelDebug
		}
		line := append(attrs[:len(attrs):len(attrs)], "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "dur", time.Since(start))
		if rec.err != nil {
			line = append(line, "err", rec.err)
		}
		log.Log(r.Context(), level, "request", line...)
	})
}

// SetErr hands err to the request's log line, when w is Handler's writer.
func SetErr(w http.ResponseWriter, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.err = err
	}
}

// WriteJSON answers v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; an encode error now is a client gone away, nothing to answer.
	_ = json.NewEncoder(w).Encode(v)
}

// FirstLine is the part of an error message an API sends: one line, as a CLI prints it.
func FirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// recorder remembers what a handler answered, for the one log line per request.
type recorder struct {
	http.ResponseWriter
	status int
	err    error // set by SetErr
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer: without it the
// wrapper hides Flush, and a stream (GET /events) would reach its reader only when it ends.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
