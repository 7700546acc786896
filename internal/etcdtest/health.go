package etcdtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// waitHealthy polls /health until etcd says {"health":"true"}, it exits, or the deadline.
func (s *Server) waitHealthy(deadline time.Time) error {
	p := s.running()
	if p == nil {
		return errors.New("not running")
	}
	var last error
	for {
		if last = s.health(); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was healthy (%w)", p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v: %w", startTimeout, last)
		}
	}
}

// health asks /health once; nil means healthy.
func (s *Server) health() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.client+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := s.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("decode /health (%s): %w", resp.Status, err)
	}
	if h.Health != "true" {
		return fmt.Errorf("/health says %q (%s)", h.Health, resp.Status)
	}
	return nil
}

// status is the part of /v3/maintenance/status that Cluster.Leader reads. The gateway
// prints uint64 IDs as JSON strings.
type status struct {
	Header struct {
		MemberID string `json:"member_id"`
	}
	Leader string
}

// status asks the member's /v3/maintenance/status once.
func (s *Server) status() (status, error) {
	var st status
	if s.running() == nil {
		return st, errors.New("not running")
	}
	resp, err := s.httpc.Post(s.client+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/v3/maintenance/status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decode /v3/maintenance/status: %w", err)
	}
	return st, nil
}

func (s *Server) running() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}
