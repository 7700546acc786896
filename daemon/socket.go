package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth/internal/tlsfiles"
)

// lookupGroup resolves a group name (from /etc/group: the binary has no cgo, so no NSS) or a
// numeric GID, as dockerd's --group does.
func lookupGroup(name string) (int, error) {
	if gid, err := strconv.Atoi(name); err == nil {
		if gid < 0 {
			return 0, errors.New("negative GID")
		}
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, errors.New("no such group")
	}
	return strconv.Atoi(g.Gid)
}

// listenUnix listens on path with mode 0660, owned by group gid unless gid is -1. A socket
// file left by a crashed daemon is removed, but only if nothing answers on it: a live
// daemon keeps its socket.
func listenUnix(path string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another daemon is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chown %s to group %d: %w", path, gid, err)
		}
	}
	return ln, nil
}

// TLSConfig is dockerd's --tlsverify, --tlscacert, --tlscert and --tlskey: the daemon's
// certificate and key, and the CA every client certificate must be signed by.
type TLSConfig struct {
	Verify bool   // --tlsverify: clients must present a certificate the CA signed
	CACert string // --tlscacert: PEM file of the CA
	Cert   string // --tlscert: PEM file of the daemon's certificate
	Key    string // --tlskey: PEM file of its key
}

// listenAddr is a parsed --socket.
type listenAddr struct {
	network string      // "unix" or "tcp"
	addr    string      // a path, or HOST:PORT
	tls     *tls.Config // mutual TLS for tcp; nil for unix
}

// parseListen parses a listen flag (field: its name, for errors): unix://PATH or a path,
// or tcp://HOST:PORT, which only with mutual TLS: berth's APIs can create namespaces and
// firewall rules as root, so a TCP port anyone on the network can reach must ask every
// client for a certificate.
func parseListen(field, s string, tc TLSConfig) (listenAddr, error) {
	if path, ok := strings.CutPrefix(s, "unix://"); ok {
		if path == "" {
			return listenAddr{}, fmt.Errorf("invalid %s %q: no path", field, s)
		}
		return listenAddr{network: "unix", addr: path}, nil
	}
	hostport, ok := strings.CutPrefix(s, "tcp://")
	if !ok {
		if strings.Contains(s, "://") {
			return listenAddr{}, fmt.Errorf("invalid %s %q: want unix://PATH, a path, or tcp://HOST:PORT", field, s)
		}
		return listenAddr{network: "unix", addr: s}, nil
	}
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		return listenAddr{}, fmt.Errorf("invalid %s %q: want tcp://HOST:PORT", field, s)
	}
	if !tc.Verify || tc.CACert == "" || tc.Cert == "" || tc.Key == "" {
		return listenAddr{}, fmt.Errorf("invalid %s %q: tcp:// needs mutual TLS: --tlsverify --tlscacert FILE --tlscert FILE --tlskey FILE", field, s)
	}
	cfg, err := serverTLS(tc)
	if err != nil {
		return listenAddr{}, err
	}
	return listenAddr{network: "tcp", addr: hostport, tls: cfg}, nil
}

// serverTLS loads the daemon's key pair and the CA of its clients.
func serverTLS(tc TLSConfig) (*tls.Config, error) {
	cert, pool, err := tlsfiles.Load(tc.CACert, tc.Cert, tc.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// listen opens the API's listener; gid, if not -1, owns a unix socket.
func (l listenAddr) listen(gid int) (net.Listener, error) {
	if l.network == "unix" {
		return listenUnix(l.addr, gid)
	}
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return nil, fmt.Errorf("listen tcp://%s: %w", l.addr, err)
	}
	return tls.NewListener(ln, l.tls), nil
}
