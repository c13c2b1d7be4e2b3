package secrets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	tests := []struct {
		life time.Duration
		want time.Duration
	}{
		{30 * time.Second, 20 * time.Second},
		{24 * time.Hour, 16 * time.Hour},
		{0, 0},
		{-time.Minute, 0}, // already expired: renew now
	}
	for _, tt := range tests {
		if got := RenewAt(fixedNow, fixedNow.Add(tt.life)); !got.Equal(fixedNow.Add(tt.want)) {
			t.Errorf("RenewAt(life %v) = %v, want now+%v", tt.life, got.Sub(fixedNow), tt.want)
		}
	}
}

func TestNewPKICertificateConfig(t *testing.T) {
	v := &Vault{}
	for _, o := range []PKIOptions{
		{Mount: "", Role: "r", CommonName: "cn"},
		{Mount: "../pki", Role: "r", CommonName: "cn"},
		{Mount: "pki", Role: "", CommonName: "cn"},
		{Mount: "pki", Role: "r", CommonName: ""},
	} {
		if _, err := NewPKICertificate(v, o); !errors.Is(err, ErrVaultConfig) {
			t.Errorf("NewPKICertificate(%+v) = %v, want ErrVaultConfig", o, err)
		}
	}
	p, err := NewPKICertificate(v, PKIOptions{Mount: "pki", Role: "r", CommonName: "cn"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetCertificate(nil); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("GetCertificate before issuance = %v, want ErrNotLoaded", err)
	}
	if st := p.Status(); st.Loaded || st.Kind != KindPKI || st.Path != "pki/issue/r" {
		t.Errorf("Status = %+v", st)
	}
}

// TestVaultPKIIntegration issues a short-lived listener certificate from a
// real PKI engine, serves it over TLS, and watches Run replace it after two
// thirds of its lifetime.
func TestVaultPKIIntegration(t *testing.T) {
	srv := vaultHarness.Require(t)
	ctx := vaultCtx(t)
	mount := "pki-" + randSuffix(t)
	if err := srv.Mount(ctx, mount, "pki", nil); err != nil {
		t.Fatal(err)
	}
	root := rootClient(t, srv)
	rootPEM := mustWrite2(t, root, mount+"/root/generate/internal", map[string]any{
		"common_name": "wsgate test root", "ttl": "8760h",
	}).Data["certificate"].(string)
	rootCerts, err := ParseCertificates("root", "certificate", rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite2(t, root, mount+"/roles/wsgate", map[string]any{
		"allowed_domains": "example.test", "allow_subdomains": true, "max_ttl": "1h",
		"key_type": "ec", "key_bits": 256,
	})

	const ttl = 15 * time.Second
	const cn = "gw.example.test"
	p, err := NewPKICertificate(tokenVault(t, srv), PKIOptions{Mount: mount, Role: "wsgate", CommonName: cn, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.Run(runCtx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	waitFor(t, 20*time.Second, "the first certificate", func() bool { _, err := p.GetCertificate(nil); return err == nil })
	first, _ := p.GetCertificate(nil)
	firstSeen := time.Now()
	leaf := first.Leaf
	if leaf.Subject.CommonName != cn {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if life := leaf.NotAfter.Sub(firstSeen); life > ttl+time.Second || life < ttl-5*time.Second {
		t.Errorf("lifetime left %v, want about %v", life, ttl)
	}
	pool := x509.NewCertPool()
	pool.AddCert(rootCerts[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: cn, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}
	if st := p.Status(); !st.Loaded || st.Error != "" || !st.StaleSince.IsZero() {
		t.Errorf("Status = %+v", st)
	}
	if got := handshake(t, p, pool, cn); !got.Equal(leaf) {
		t.Error("TLS handshake did not serve the issued certificate")
	}

	// Renewal: a new certificate appears after 2/3 of the lifetime, before expiry.
	waitFor(t, ttl+5*time.Second, "a renewed certificate", func() bool {
		c, _ := p.GetCertificate(nil)
		return c.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0
	})
	renewedAfter := time.Since(firstSeen)
	if earliest := ttl*2/3 - 2*time.Second; renewedAfter < earliest {
		t.Errorf("renewed after %v, want about 2/3 of %v", renewedAfter, ttl)
	}
	if time.Now().After(leaf.NotAfter) {
		t.Errorf("renewed only after the old certificate expired")
	}
	second, _ := p.GetCertificate(nil)
	if got := handshake(t, p, pool, cn); !got.Equal(second.Leaf) {
		t.Error("TLS handshake did not serve the renewed certificate")
	}

	// Issuance failure (role deleted): the current certificate stays, the status turns stale.
	cancel()
	wg.Wait()
	if _, err := root.Logical().DeleteWithContext(ctx, mount+"/roles/wsgate"); err != nil {
		t.Fatal(err)
	}
	if err := p.Issue(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Issue with the role gone = %v, want ErrUnavailable", err)
	}
	if c, err := p.GetCertificate(nil); err != nil || !c.Leaf.Equal(second.Leaf) {
		t.Errorf("after a failed issuance GetCertificate = %v, want the last good certificate", err)
	}
	if st := p.Status(); !st.Loaded || st.StaleSince.IsZero() || st.Error == "" {
		t.Errorf("Status after failure = %+v, want loaded and stale", st)
	}
}

// handshake serves one TLS connection with p.GetCertificate and returns the
// leaf the client saw after verifying it against roots.
func handshake(t *testing.T, p *PKICertificate, roots *x509.CertPool, name string) *x509.Certificate {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: p.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}
