package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"

	"berth/api/client"
	"berth/internal/tlstest"
)

// TestTCPMutualTLS serves the API's listener on tcp:// with --tlsverify and checks who gets
// through: only a client with a certificate of the daemon's CA, which also checks the
// daemon's certificate.
func TestTCPMutualTLS(t *testing.T) {
	f := tlstest.Write(t, t.TempDir())
	l, err := parseListen("socket", "tcp://127.0.0.1:0", TLSConfig{Verify: true, CACert: f.CA, Cert: f.ServerCert, Key: f.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := l.listen(-1)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("{}")) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	host := "tcp://" + ln.Addr().String()

	good, err := client.LoadTLS(f.CA, f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	ping := func(tc *tls.Config) error {
		c, err := client.NewTLS(host, tc)
		if err != nil {
			t.Fatal(err)
		}
		return c.Ping(t.Context())
	}
	if err := ping(good); err != nil {
		t.Fatalf("client with a certificate of the CA: %v", err)
	}
	noCert := &tls.Config{RootCAs: good.RootCAs}
	foreign, err := client.LoadTLS(f.CA, f.ForeignCert, f.ForeignKey)
	if err != nil {
		t.Fatal(err)
	}
	// Go's client sends no certificate the daemon's CA list rules out; this one insists.
	foreignCert := foreign.Certificates[0]
	foreign.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreignCert, nil }
	otherRoots := x509.NewCertPool()
	pem, _ := os.ReadFile(f.ForeignCA)
	otherRoots.AppendCertsFromPEM(pem)
	distrust := good.Clone()
	distrust.RootCAs = otherRoots
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"no client certificate", noCert, "tls: certificate required"},
		{"certificate of another CA", foreign, "tls: unknown certificate authority"},
		{"daemon not trusted", distrust, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ping(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want one line with %q", err, tc.want)
			}
		})
	}
	// Plain HTTP gets no API answer either.
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/ping")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP: got %s, want a refusal", resp.Status)
		}
	}
}
