package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"berth/api"
	"berth/internal/filters"
	"berth/internal/httplog"
	"berth/netmgr"
	"berth/store"
)

// maxBody bounds request bodies: the largest real one (a sandbox with many flags) is a few
// KiB, so anything near this is a mistake or an attack, refused before it is buffered.
const maxBody = 1 << 20

// server is the HTTP API over the daemon. Mutations call netmgr (a sandbox create goes
// through daemon_ops.go, which starts its DNS); events and DNS follow in Changed. Reads come
// straight from a store snapshot and never wait for a mutation.
type server struct {
	d   *daemon
	log *slog.Logger

	streams     context.Context // done when the daemon shuts down: ends event streams
	stopStreams context.CancelFunc
}

func newServer(d *daemon) *server {
	ctx, cancel := context.WithCancel(context.Background())
	return &server{d: d, log: d.log, streams: ctx, stopStreams: cancel}
}

// handler routes /v1 with Go 1.22 method patterns and logs each request once.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	v := api.Version
	mux.HandleFunc("GET "+v+"/ping", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "OK")
	})
	mux.HandleFunc("POST "+v+"/networks", s.createNetwork)
	mux.HandleFunc("GET "+v+"/networks", s.listNetworks)
	mux.HandleFunc("GET "+v+"/networks/{ref}", s.getNetwork)
	mux.HandleFunc("DELETE "+v+"/networks/{ref}", s.removeNetwork)
	mux.HandleFunc("POST "+v+"/networks/prune", s.pruneNetworks)
	mux.HandleFunc("POST "+v+"/networks/{ref}/connect", s.connect)
	mux.HandleFunc("POST "+v+"/networks/{ref}/disconnect", s.disconnect)
	mux.HandleFunc("POST "+v+"/sandboxes", s.createSandbox)
	mux.HandleFunc("GET "+v+"/sandboxes", s.listSandboxes)
	mux.HandleFunc("GET "+v+"/sandboxes/{ref}", s.getSandbox)
	mux.HandleFunc("DELETE "+v+"/sandboxes/{ref}", s.removeSandbox)
	mux.HandleFunc("POST "+v+"/sandboxes/{ref}/rename", s.renameSandbox)
	mux.HandleFunc("GET "+v+"/sandboxes/{ref}/dns", s.dnsQuery)
	mux.HandleFunc("GET "+v+"/events", s.streamEvents)
	if s.d.metrics != nil {
		mux.Handle("GET /metrics", s.d.metrics)
	}
	return httplog.Handler(s.log, mux)
}

func (s *server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkCreate
	if !decodeBody(w, r, &req) {
		return
	}
	n, err := s.d.mgr.CreateNetwork(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	httplog.WriteJSON(w, http.StatusCreated, api.IDResponse{ID: n.ID}) // 201 as docker's create
}

// listNetworks and the other reads build views from one snapshot, never from netmgr, so a
// slow mutation cannot stall `ls` or `inspect`.
func (s *server) listNetworks(w http.ResponseWriter, r *http.Request) {
	args, err := queryFilters(r)
	if err == nil {
		var out []api.Network
		if out, err = s.d.networks(args); err == nil {
			httplog.WriteJSON(w, http.StatusOK, out)
			return
		}
	}
	writeError(w, err)
}

// queryFilters reads the filters query parameter (Docker's JSON, either form).
func queryFilters(r *http.Request) (filters.Args, error) {
	return filters.FromJSON(r.URL.Query().Get("filters"))
}

func (s *server) getNetwork(w http.ResponseWriter, r *http.Request) {
	snap := s.d.st.Snapshot()
	n, err := netmgr.NetworkByRef(snap, r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	httplog.WriteJSON(w, http.StatusOK, networkView(snap, n, s.d.localPeer()))
}

func (s *server) removeNetwork(w http.ResponseWriter, r *http.Request) {
	writeResult(w, s.d.mgr.RemoveNetwork(r.Context(), api.NetworkRemove{Network: r.PathValue("ref")}))
}

func (s *server) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	args, err := queryFilters(r)
	var deleted []string
	if err == nil {
		deleted, err = s.d.pruneNetworks(r.Context(), args)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	httplog.WriteJSON(w, http.StatusOK, api.PruneResponse{Deleted: nonNil(deleted)})
}

// connect and disconnect call netmgr; Changed follows (the event, a DNS server a connected
// sandbox now needs).
func (s *server) connect(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkConnect
	if decodeBody(w, r, &req) {
		req.Network = r.PathValue("ref")
		writeResult(w, s.d.mgr.Connect(r.Context(), req))
	}
}

func (s *server) disconnect(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkDisconnect
	if decodeBody(w, r, &req) {
		req.Network = r.PathValue("ref")
		writeResult(w, s.d.mgr.Disconnect(r.Context(), req))
	}
}

func (s *server) createSandbox(w http.ResponseWriter, r *http.Request) {
	var req api.SandboxCreate
	if !decodeBody(w, r, &req) {
		return
	}
	sb, err := s.d.createSandbox(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	httplog.WriteJSON(w, http.StatusCreated, api.IDResponse{ID: sb.ID, Name: sb.Name})
}

func (s *server) listSandboxes(w http.ResponseWriter, r *http.Request) {
	args, err := queryFilters(r)
	if err == nil {
		var out []api.Sandbox
		if out, err = s.d.sandboxes(args); err == nil {
			httplog.WriteJSON(w, http.StatusOK, out)
			return
		}
	}
	writeError(w, err)
}

func (s *server) getSandbox(w http.ResponseWriter, r *http.Request) {
	snap := s.d.st.Snapshot()
	sb, err := netmgr.SandboxByRef(snap, r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	httplog.WriteJSON(w, http.StatusOK, sandboxView(snap, sb))
}

// removeSandbox takes ?force=1 (docker's spelling); anything strconv.ParseBool reads works.
func (s *server) removeSandbox(w http.ResponseWriter, r *http.Request) {
	req := api.SandboxRemove{Sandbox: r.PathValue("ref")}
	if q := r.URL.Query().Get("force"); q != "" {
		var err error
		if req.Force, err = strconv.ParseBool(q); err != nil {
			writeError(w, &requestError{fmt.Sprintf("invalid force %q: want 1 or 0", q)})
			return
		}
	}
	writeResult(w, s.d.mgr.RemoveSandbox(r.Context(), req))
}

func (s *server) renameSandbox(w http.ResponseWriter, r *http.Request) {
	var req api.SandboxRename
	if decodeBody(w, r, &req) {
		req.Sandbox = r.PathValue("ref")
		writeResult(w, s.d.mgr.RenameSandbox(r.Context(), req))
	}
}

// requestError is a body or query the API cannot use at all (→ 400), before any field is
// looked at; field-level problems are netmgr.InvalidError.
type requestError struct{ reason string }

func (e *requestError) Error() string { return "invalid request body: " + e.reason }

// decodeBody reads exactly one JSON value of at most maxBody bytes with only known fields
// into v. On failure it answers 400 and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// A second value (or garbage) after the first means the client sent something
		// other than what it meant; refuse rather than silently ignore it.
		var mb *http.MaxBytesError
		if _, terr := dec.Token(); errors.As(terr, &mb) {
			err = terr // the size, not what came after, is what the user must fix
		} else if terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		writeError(w, &requestError{bodyReason(err)})
		return false
	}
	return true
}

// bodyReason words a decode error as the one-line reason a user sees.
func bodyReason(err error) string {
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return fmt.Sprintf("larger than %d bytes", mb.Limit)
	case errors.Is(err, io.EOF):
		return "empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return httplog.FirstLine(strings.TrimPrefix(err.Error(), "json: "))
}

// statusOf maps an error to its HTTP status: the API's whole error classification.
func statusOf(err error) int {
	var inv *netmgr.InvalidError
	var req *requestError
	switch {
	case errors.As(err, &inv), errors.As(err, &req), badFilter(err):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// writeError answers err as api.Error with its status, and hands err to the request logger.
func writeError(w http.ResponseWriter, err error) {
	httplog.SetErr(w, err)
	httplog.WriteJSON(w, statusOf(err), api.Error{Message: httplog.FirstLine(err.Error())})
}

// writeResult answers a mutation without a body: 204 (docker's status for connect,
// rename and delete), or the error.
func writeResult(w http.ResponseWriter, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
