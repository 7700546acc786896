package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/netmgr"
	"berth/store"
)

func TestParseStore(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "etcd://10.0.0.1:2379", want: []string{"10.0.0.1:2379"}},
		{in: "etcd://10.0.0.1:2379,10.0.0.2:2379", want: []string{"10.0.0.1:2379", "10.0.0.2:2379"}},
		{in: "etcd://[fd00::1]:2379", want: []string{"[fd00::1]:2379"}},
		{in: "etcd://etcd.internal:2379", want: []string{"etcd.internal:2379"}},
		{in: "", err: `invalid cluster-store "": want etcd://IP:PORT[,IP:PORT...]`},
		{in: "consul://10.0.0.1:8500", err: "want etcd://"},
		{in: "10.0.0.1:2379", err: "want etcd://"},
		{in: "etcd://", err: "no endpoint"},
		{in: "etcd://10.0.0.1", err: `endpoint "10.0.0.1": want IP:PORT`},
		{in: "etcd://10.0.0.1:2379,", err: `endpoint "": want IP:PORT`},
		{in: "etcd://:2379", err: "want IP:PORT"},
		{in: "etcd://10.0.0.1:0", err: "port must be 1-65535"},
		{in: "etcd://10.0.0.1:65536", err: "port must be 1-65535"},
		{in: "etcd://10.0.0.1:x", err: "port must be 1-65535"},
		{in: "etcd://10.0.0.1:2379/path", err: "port must be 1-65535"},
		{in: "etcd://10.0.0.1:2379,10.0.0.1:2379", err: "given twice"},
	} {
		got, err := ParseStore(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "invalid cluster-store ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseStore(%q) = %v, %v; want one line with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseStore(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")

	cfg, err := TLSConfig(nil)
	if cfg != nil || err != nil {
		t.Errorf("TLSConfig(nil) = %v, %v; want nil, nil", cfg, err)
	}
	cfg, err = TLSConfig(map[string]string{OptCACert: pki.ca, OptCert: pki.clientCert, OptKey: pki.clientKey})
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("TLSConfig(all three) = %+v, %v", cfg, err)
	}
	if cfg, err = TLSConfig(map[string]string{OptCACert: pki.ca}); err != nil || cfg.RootCAs == nil || cfg.Certificates != nil {
		t.Errorf("TLSConfig(CA only) = %+v, %v", cfg, err)
	}
	for _, tc := range []struct {
		name string
		opts map[string]string
		err  string
	}{
		{"unknown key", map[string]string{"kv.path": "/x"}, `invalid cluster-store-opt "kv.path": unknown option`},
		{"empty file", map[string]string{OptCACert: ""}, `invalid cluster-store-opt "kv.cacertfile": empty file name`},
		{"missing CA", map[string]string{OptCACert: missing}, "invalid kv.cacertfile \"" + missing + "\": no such file or directory"},
		{"junk CA", map[string]string{OptCACert: junk}, "no PEM certificate"},
		{"cert without key", map[string]string{OptCert: pki.clientCert}, "invalid kv.keyfile \"\": required with kv.certfile"},
		{"key without cert", map[string]string{OptKey: pki.clientKey}, "invalid kv.certfile \"\": required with kv.keyfile"},
		{"junk cert", map[string]string{OptCert: junk, OptKey: pki.clientKey}, "invalid kv.certfile"},
		{"mismatched key", map[string]string{OptCert: pki.clientCert, OptKey: pki.serverKey}, "invalid kv.certfile"},
	} {
		cfg, err := TLSConfig(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, %v; want one line with %q", tc.name, cfg, err, tc.err)
		}
	}
}

func TestNewInvalid(t *testing.T) {
	good := func() Config {
		st := store.NewMemory()
		return Config{Endpoints: []string{"127.0.0.1:1"}, Advertise: netip.MustParseAddr("192.0.2.1"), HostID: "h",
			Snapshot: st.Snapshot, Apply: newRecorder().apply}
	}
	c, err := New(good())
	if err != nil {
		t.Fatalf("New with nothing listening: %v; want a client (etcd may come later)", err)
	}
	c.Close()
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
		err   string
	}{
		{"no endpoint", func(c *Config) { c.Endpoints = nil }, "invalid cluster-store"},
		{"no advertise", func(c *Config) { c.Advertise = netip.Addr{} }, "invalid cluster-advertise"},
		{"unspecified advertise", func(c *Config) { c.Advertise = netip.IPv4Unspecified() }, "invalid cluster-advertise \"0.0.0.0\""},
		{"no host ID", func(c *Config) { c.HostID = "" }, "invalid cluster host ID"},
		{"host ID with slash", func(c *Config) { c.HostID = "a/b" }, "invalid cluster host ID"},
		{"short TTL", func(c *Config) { c.TTL = time.Second }, "minimum lease"},
		{"prefix", func(c *Config) { c.Prefix = "/x" }, `must end in "/"`},
		{"no apply", func(c *Config) { c.Apply = nil }, "Apply"},
	} {
		cfg := good()
		tc.tweak(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.err)
		}
	}
	var inv *netmgr.InvalidError
	if _, err := ParseStore("x"); !errors.As(err, &inv) {
		t.Errorf("ParseStore error %T; want *netmgr.InvalidError (the API answers 400)", err)
	}
}

// pki is a test CA with a server certificate for 127.0.0.1 and a client certificate,
// written as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey := genKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := pki{ca: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.ca, "CERTIFICATE", caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (string, string) {
		key := genKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cert, keyf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, cert, "CERTIFICATE", der)
		writePEM(t, keyf, "EC PRIVATE KEY", kder)
		return cert, keyf
	}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
