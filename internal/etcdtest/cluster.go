package etcdtest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Cluster is a set of etcd members that bootstrapped together, for tests that lose and
// regain a member.
type Cluster struct {
	Members []*Server // in the order of --initial-cluster
}

// StartCluster runs an n-member etcd cluster and waits until every member is healthy
// (which means there is a leader). It skips or fails as Start does without etcd.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	requireBinary(t)
	c := newConfig(opts)
	var err error
	for range startAttempts {
		var cl *Cluster
		cl, err = startCluster(t, c, n)
		if err == nil {
			return cl
		}
		retry := false
		for _, m := range cl.Members {
			m.kill()
			retry = retry || m.out.contains("address already in use")
		}
		if !retry {
			break
		}
	}
	t.Fatalf("start etcd cluster of %d: %v", n, err)
	return nil
}

// startCluster makes one attempt; on error the caller kills the members it returns.
func startCluster(t testing.TB, c config, n int) (*Cluster, error) {
	t.Helper()
	ports := freePorts(t, c.host, 2*n)
	base := memberName()
	cl := &Cluster{}
	var initial []string
	for i := range n {
		m := newServer(t, c.host, fmt.Sprintf("%s-%d", base, i), ports[2*i], ports[2*i+1])
		cl.Members = append(cl.Members, m)
		initial = append(initial, m.name+"="+url(c.host, ports[2*i+1]))
	}
	for _, m := range cl.Members {
		m.args = append(m.args, "--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", base)
		if err := m.launch(); err != nil {
			return cl, fmt.Errorf("member %s: %w", m.name, err)
		}
	}
	// Members start together: none is healthy before a quorum has joined and elected.
	deadline := time.Now().Add(startTimeout)
	for _, m := range cl.Members {
		if err := m.waitHealthy(deadline); err != nil {
			return cl, fmt.Errorf("member %s: %w", m.name, err)
		}
	}
	return cl, nil
}

// Endpoints returns every member's client URL.
func (cl *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range cl.Members {
		eps = append(eps, m.client)
	}
	return eps
}

// Leader returns the member the running members agree leads, waiting (bounded, as in
// Start) for an election if there is none; a test kills it to lose the leader rather than
// a follower. It asks /v3/maintenance/status, the JSON gateway, so no etcd client is needed.
func (cl *Cluster) Leader() *Server {
	t := cl.Members[0].t
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		ids := map[string]*Server{} // member ID -> member
		votes := map[string]int{}   // leader ID -> members that name it
		running := 0
		for _, m := range cl.Members {
			st, err := m.status()
			if err != nil {
				continue
			}
			running++
			ids[st.Header.MemberID] = m
			votes[st.Leader]++
		}
		for id, n := range votes {
			if m := ids[id]; m != nil && id != "0" && n == running {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd cluster: no leader all running members agree on after %v", startTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
