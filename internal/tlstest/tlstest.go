// Package tlstest writes the certificates of a mutual-TLS test: a CA, a daemon certificate
// for 127.0.0.1 and localhost, a client certificate the CA signed, and one signed by a
// second CA the daemon does not trust. For tests only; the keys are ECDSA P-256 and live
// one hour.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files are the PEM files Write made.
type Files struct {
	CA, ServerCert, ServerKey string
	ClientCert, ClientKey     string // signed by CA
	ForeignCert, ForeignKey   string // signed by another CA
	ForeignCA                 string
	Dir                       string // holds ca.pem, cert.pem, key.pem (the client's), as BERTH_CERT_PATH wants
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Write writes the certificates into dir.
func Write(t testing.TB, dir string) Files {
	t.Helper()
	ca := newCA(t, "berth test CA")
	other := newCA(t, "other CA")
	f := Files{Dir: dir, CA: filepath.Join(dir, "ca.pem"), ForeignCA: filepath.Join(dir, "other-ca.pem"),
		ServerCert: filepath.Join(dir, "server-cert.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "cert.pem"), ClientKey: filepath.Join(dir, "key.pem"),
		ForeignCert: filepath.Join(dir, "foreign-cert.pem"), ForeignKey: filepath.Join(dir, "foreign-key.pem")}
	writePEM(t, f.CA, "CERTIFICATE", ca.cert.Raw)
	writePEM(t, f.ForeignCA, "CERTIFICATE", other.cert.Raw)
	ca.leaf(t, "berth daemon", x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey)
	ca.leaf(t, "berth client", x509.ExtKeyUsageClientAuth, f.ClientCert, f.ClientKey)
	other.leaf(t, "stranger", x509.ExtKeyUsageClientAuth, f.ForeignCert, f.ForeignKey)
	return f
}

func newCA(t testing.TB, name string) issuer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return issuer{cert, key}
}

// leaf writes a certificate for 127.0.0.1 and localhost with the given use, and its key.
func (is issuer) leaf(t testing.TB, name string, use x509.ExtKeyUsage, certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{use},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, &key.PublicKey, is.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
