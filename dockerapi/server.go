// Package dockerapi is the network part of Docker's Engine API in front of berth, so that
// Docker's own clients (the docker CLI, the Go SDK, anything speaking API 1.24 to 1.48)
// drive berth's networks: `DOCKER_HOST=unix://PATH docker network create|ls|inspect|
// connect|disconnect|rm|prune` and `docker events`. A container of Docker's is a berth
// sandbox (by name or ID).
//
// It translates and does nothing else: Docker's JSON and query parameters in, calls of a
// small Backend (which the daemon implements with its own operations and views) out, and
// Docker's JSON, status codes and error texts back. It holds no state, touches no store or
// kernel, and never imports Docker's module (its types are written here by hand). Any
// other path answers Docker's error JSON saying that berth runs no containers.
package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"berth/api"
	"berth/internal/filters"
	"berth/internal/httplog"
)

// The API versions served: the newest one whose network endpoints berth implements (1.48
// adds EnableIPv4, Docker 28.0) down to the oldest any current Docker still accepts. So
// both Debian's docker 20.10 (1.41) and docker 28 (1.50, negotiating down) work.
const (
	APIVersion    = "1.48"
	MinAPIVersion = "1.24"
)

// Backend is what the front end needs of the daemon: berth's own operations and views.
// Errors should be *Error where Docker has a status and words of its own for the failure;
// a filters error answers 400; anything else 500 with its first line.
type Backend interface {
	// Networks lists the networks (views as GET /v1/networks shows them) matching args.
	Networks(args filters.Args) ([]api.Network, error)
	// Network is one network by NAME|ID|ID-prefix.
	Network(ref string) (api.Network, error)
	// CreateNetwork creates a network and returns its ID.
	CreateNetwork(ctx context.Context, req api.NetworkCreate) (string, error)
	RemoveNetwork(ctx context.Context, ref string) error
	Connect(ctx context.Context, req api.NetworkConnect) error
	Disconnect(ctx context.Context, req api.NetworkDisconnect) error
	// PruneNetworks removes the unused networks matching args and returns their names.
	PruneNetworks(ctx context.Context, args filters.Args) ([]string, error)
	// Events returns the kept events since t and a channel of the following ones (closed
	// if the subscriber falls behind); cancel must be called when done.
	Events(since time.Time) (past []api.Event, next <-chan api.Event, cancel func())
	// Info fills what the daemon knows of GET /info: sandbox counts, root dir, ID.
	Info() (Info, error)
}

// Error is a failure with the HTTP status and the message Docker answers it with.
type Error struct {
	Status  int
	Message string
	Err     error // the cause, for the log; may be nil
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Errorf is an *Error with status and a formatted message; a %w in format is its cause.
func Errorf(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Status: status, Message: err.Error(), Err: errors.Unwrap(err)}
}

// Config is what New needs.
type Config struct {
	Backend Backend // required
	Log     *slog.Logger
}

// Server is the Engine API as an http.Handler.
type Server struct {
	b   Backend
	mux *http.ServeMux
	// logged is serve wrapped in the request log.
	logged http.Handler

	streams     context.Context // done on StopStreams: ends event streams
	stopStreams context.CancelFunc
}

// New builds the handler over cfg.Backend.
func New(cfg Config) *Server {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{b: cfg.Backend, mux: http.NewServeMux(), streams: ctx, stopStreams: cancel}
	s.routes()
	s.logged = httplog.Handler(log, http.HandlerFunc(s.serve), "api", "docker")
	return s
}

// StopStreams ends every event stream, so that a graceful shutdown never waits on one.
func (s *Server) StopStreams() { s.stopStreams() }

// routes registers Docker's paths without the version prefix, which serve strips.
// A GET pattern also serves HEAD (HEAD /_ping is how clients probe first).
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /_ping", s.ping)
	m.HandleFunc("GET /version", s.version)
	m.HandleFunc("GET /info", s.info)
	m.HandleFunc("GET /networks", s.listNetworks)
	m.HandleFunc("GET /networks/{$}", s.listNetworks)
	m.HandleFunc("GET /networks/{id}", s.inspectNetwork)
	m.HandleFunc("POST /networks/create", s.createNetwork)
	m.HandleFunc("POST /networks/prune", s.pruneNetworks)
	m.HandleFunc("POST /networks/{id}/connect", s.connect)
	m.HandleFunc("POST /networks/{id}/disconnect", s.disconnect)
	m.HandleFunc("DELETE /networks/{id}", s.removeNetwork)
	m.HandleFunc("GET /events", s.events)
	m.HandleFunc("/", notServed) // everything else, any method
}

// notServed answers the rest of Docker's API (containers, images, volumes, ...).
func notServed(w http.ResponseWriter, r *http.Request) {
	writeError(w, &Error{Status: http.StatusNotFound,
		Message: fmt.Sprintf("berth serves only Docker's network API; it runs no containers (%s %s)", r.Method, r.URL.Path)})
}

// ServeHTTP serves r and logs it once.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.logged.ServeHTTP(w, r) }

// serve sets dockerd's headers, checks and strips the /vX.Y prefix, and routes.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Ostype", runtime.GOOS)
	h.Set("Docker-Experimental", "false")
	h.Set("Server", "berth/"+serverVersion+" ("+runtime.GOOS+")")
	path, v, err := stripVersion(r.URL.Path)
	if err != nil {
		writeError(w, err)
		return
	}
	r2 := r.Clone(context.WithValue(r.Context(), versionKey{}, v))
	r2.URL.Path, r2.URL.RawPath = path, ""
	s.mux.ServeHTTP(w, r2)
}

// versionKey is the request context's key of the API version the client asked for.
type versionKey struct{}

// requestVersion is the API version of r's request (APIVersion without a prefix).
func requestVersion(r *http.Request) string {
	if v, ok := r.Context().Value(versionKey{}).(string); ok {
		return v
	}
	return APIVersion
}

// stripVersion removes a leading /vX.Y and returns the path and version, refusing versions
// outside MinAPIVersion to APIVersion with dockerd's words; a path without one is served
// at APIVersion.
func stripVersion(path string) (string, string, error) {
	rest, ok := strings.CutPrefix(path, "/v")
	if !ok {
		return path, APIVersion, nil
	}
	v, tail, _ := strings.Cut(rest, "/")
	if v == "" || strings.Trim(v, "0123456789.") != "" {
		return path, APIVersion, nil // not a version: routed as is (and so not found), as dockerd does
	}
	switch {
	case compareVersions(v, MinAPIVersion) < 0:
		return "", "", &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(
			"client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion)}
	case compareVersions(v, APIVersion) > 0:
		return "", "", &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(
			"client version %s is too new. Maximum supported API version is %s", v, APIVersion)}
	}
	return "/" + tail, v, nil
}

// compareVersions compares dotted versions numerically, as Docker's api/types/versions:
// a missing or non-numeric part counts as 0.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// serverVersion is berth's module version as the build recorded it ("(devel)" for a
// plain go build), shown as the engine's version.
var serverVersion = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return strings.Trim(bi.Main.Version, "()")
	}
	return "devel"
}()

func (s *Server) ping(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("OK"))
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	kernel := kernelVersion()
	details := map[string]string{"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion,
		"Os": runtime.GOOS, "Arch": runtime.GOARCH, "GoVersion": runtime.Version(),
		"KernelVersion": kernel, "Experimental": "false", "GitCommit": "", "BuildTime": ""}
	httplog.WriteJSON(w, http.StatusOK, versionResponse{
		Platform:   platform{Name: "berth"},
		Components: []component{{Name: "Engine", Version: serverVersion, Details: details}},
		Version:    serverVersion, APIVersion: APIVersion, MinAPIVersion: MinAPIVersion,
		GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH, KernelVersion: kernel,
	})
}

func (s *Server) info(w http.ResponseWriter, _ *http.Request) {
	in, err := s.b.Info()
	if err != nil {
		writeError(w, err)
		return
	}
	in.Plugins.Volume, in.Plugins.Log = []string{}, []string{}
	in.Plugins.Network = []string{"bridge", "host", "null", "overlay"}
	in.SystemTime = time.Now().Format(time.RFC3339Nano)
	in.KernelVersion = kernelVersion()
	in.OperatingSystem = osName()
	in.OSType, in.Architecture = runtime.GOOS, unameMachine()
	in.NCPU, in.NGoroutines = runtime.NumCPU(), runtime.NumGoroutine()
	in.Name, _ = os.Hostname()
	in.ServerVersion = serverVersion
	in.Driver, in.LoggingDriver, in.CgroupDriver, in.DefaultRuntime = "none", "none", "none", "none"
	in.Runtimes = map[string]any{}
	in.RegistryConfig = registryConfig{InsecureRegistryCIDRs: []string{}, IndexConfigs: map[string]any{}, Mirrors: []string{}}
	in.Swarm = swarmInfo{LocalNodeState: "inactive"}
	in.Labels, in.SecurityOptions = []string{}, []string{}
	in.Warnings = []string{"berth serves only Docker's network API: it runs no containers, and its sandboxes count as containers here"}
	httplog.WriteJSON(w, http.StatusOK, in)
}
