// Package tlsfiles loads the three PEM files of mutual TLS (a CA, a certificate and its key)
// as dockerd's --tlscacert, --tlscert and --tlskey name them, for both ends: the daemon's
// tcp:// sockets and the CLI that dials them. Errors are one line naming the flag.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Load reads certFile/keyFile as a key pair and caFile as the pool of the other end's CA.
func Load(caFile, certFile, keyFile string) (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("invalid tlscert %q or tlskey %q: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("invalid tlscacert %q: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("invalid tlscacert %q: no PEM certificate in it", caFile)
	}
	return cert, pool, nil
}
