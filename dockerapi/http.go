package dockerapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"berth/internal/filters"
	"berth/internal/httplog"
)

// maxBody bounds request bodies: a network create with many options is a few KiB.
const maxBody = 1 << 20

// readJSON decodes the body into v as dockerd's httputils.ReadJSON does: JSON content
// type (or none with an empty body), an empty body leaves v as it is, unknown fields are
// ignored (newer clients send fields older servers do not know), trailing data is refused.
// The errors are dockerd 28's words, all 400.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return Errorf(http.StatusBadRequest, "invalid JSON: %w", err)
	}
	if ct == "" && len(body) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return Errorf(http.StatusBadRequest, "malformed Content-Type header (%s): %w", ct, err)
	}
	if mt != "application/json" {
		return Errorf(http.StatusBadRequest, "unsupported Content-Type header (%s): must be 'application/json'", ct)
	}
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return Errorf(http.StatusBadRequest, "invalid JSON: got EOF while reading request body")
		}
		return Errorf(http.StatusBadRequest, "invalid JSON: %w", err)
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "unexpected content after JSON")
	}
	return nil
}

// queryFilters reads the filters query parameter in either of Docker's JSON forms.
func queryFilters(r *http.Request) (filters.Args, error) {
	return filters.FromJSON(r.URL.Query().Get("filters"))
}

// statusOf is the status of an error a handler got: an *Error's own, 400 for a filter,
// else 500.
func statusOf(err error) (int, string) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status, e.Message
	case filters.Invalid(err):
		return http.StatusBadRequest, httplog.FirstLine(err.Error())
	}
	return http.StatusInternalServerError, httplog.FirstLine(err.Error())
}

// writeError answers err as Docker's error JSON, and hands err to the request log.
func writeError(w http.ResponseWriter, err error) {
	httplog.SetErr(w, err)
	status, msg := statusOf(err)
	httplog.WriteJSON(w, status, errorResponse{Message: msg})
}

// kernelVersion and unameMachine are uname's release and machine, as dockerd reports them.
func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func unameMachine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Machine[:])
}

// osName is os-release's PRETTY_NAME, as `docker info` shows it under Operating System.
func osName() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}
