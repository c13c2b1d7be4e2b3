package wssec

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"wsgate/internal/pki"
)

// makeCRL issues a CRL by issuer listing serials, valid from thisUpdate to nextUpdate.
func makeCRL(t *testing.T, issuer *pki.Identity, thisUpdate, nextUpdate time.Time, serials ...*big.Int) *x509.RevocationList {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(7), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.Cert, issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestRevocation(t *testing.T) {
	ca := samlIdentity(t, "ca", false)
	untrustedCA := samlIdentity(t, "untrusted-ca", false)
	partner := goldenCert(t, "partner-rsa")
	other := goldenCert(t, "keyusage") // also issued by ca, not revoked
	idp := goldenCert(t, "saml-idp")
	now := goldenNow
	fresh := func(serials ...*big.Int) *x509.RevocationList {
		return makeCRL(t, ca, now.Add(-time.Hour), now.Add(time.Hour), serials...)
	}
	// A CRL in ca's name, signed by another key.
	forger := &pki.Identity{Cert: &x509.Certificate{
		Subject: ca.Cert.Subject, RawSubject: ca.Cert.RawSubject, SubjectKeyId: ca.Cert.SubjectKeyId,
		KeyUsage: x509.KeyUsageCRLSign, PublicKey: untrustedCA.Cert.PublicKey,
	}, Key: untrustedCA.Key}
	forged := makeCRL(t, forger, now.Add(-time.Hour), now.Add(time.Hour))

	cases := []struct {
		name     string
		cfg      RevocationConfig
		cert     *x509.Certificate
		at       time.Time
		want     error // nil: usable
		buildErr bool
	}{
		{name: "not listed", cfg: RevocationConfig{CRLs: []*x509.RevocationList{fresh(big.NewInt(999))}}, cert: partner},
		{name: "listed", cfg: RevocationConfig{CRLs: []*x509.RevocationList{fresh(partner.SerialNumber)}}, cert: partner, want: ErrCertificateRevoked},
		{name: "listed serial, other issuer", cfg: RevocationConfig{CRLs: []*x509.RevocationList{fresh(idp.SerialNumber)}}, cert: idp},
		{name: "sibling of a revoked cert", cfg: RevocationConfig{CRLs: []*x509.RevocationList{fresh(partner.SerialNumber)}}, cert: other},
		{name: "denied certificate", cfg: RevocationConfig{Deny: []*x509.Certificate{partner}}, cert: partner, want: ErrCertificateRevoked},
		{name: "denied thumbprint", cfg: RevocationConfig{DenySHA256: [][32]byte{sha256.Sum256(idp.Raw)}}, cert: idp, want: ErrCertificateRevoked},
		{name: "deny list spares others", cfg: RevocationConfig{Deny: []*x509.Certificate{partner}}, cert: idp},
		{name: "stale CRL", cfg: RevocationConfig{CRLs: []*x509.RevocationList{fresh()}}, cert: partner,
			at: now.Add(2 * time.Hour), want: ErrRevocationUnavailable},
		{name: "stale CRL, revoked cert", cfg: RevocationConfig{CRLs: []*x509.RevocationList{fresh(partner.SerialNumber)}}, cert: partner,
			at: now.Add(2 * time.Hour), want: ErrRevocationUnavailable},
		{name: "CRL by an untrusted issuer", cfg: RevocationConfig{CRLs: []*x509.RevocationList{
			makeCRL(t, untrustedCA, now.Add(-time.Hour), now.Add(time.Hour))}}, cert: partner, want: ErrRevocationUnavailable, buildErr: true},
		{name: "forged CRL in the CA's name", cfg: RevocationConfig{CRLs: []*x509.RevocationList{forged}}, cert: partner,
			want: ErrRevocationUnavailable, buildErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Issuers = []*x509.Certificate{ca.Cert, idp}
			r, err := NewRevocation(c.cfg)
			if c.buildErr != (err != nil) {
				t.Fatalf("NewRevocation: %v", err)
			}
			at := c.at
			if at.IsZero() {
				at = now
			}
			err = CheckRevocation(r, c.cert, at)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if r.Ready(at) != nil {
					t.Fatalf("not ready: %v", r.Ready(at))
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			switch c.want {
			case ErrCertificateRevoked:
				if FaultCode(err) != "InvalidSecurityToken" || !ClientError(err) {
					t.Errorf("revoked: fault %s, client %v", FaultCode(err), ClientError(err))
				}
			case ErrRevocationUnavailable:
				if ClientError(err) {
					t.Error("an unavailable revocation source is blamed on the client")
				}
				if !errors.Is(r.Ready(at), ErrRevocationUnavailable) {
					t.Errorf("Ready = %v", r.Ready(at))
				}
			}
		})
	}
}

// A refresh is a new Revocation: a certificate revoked in the new CRL is
// refused from then on, without anything else changing.
func TestRevocationRefresh(t *testing.T) {
	ca := samlIdentity(t, "ca", false)
	partner := goldenCert(t, "partner-rsa")
	var src RevocationSource
	src, _ = NewRevocation(RevocationConfig{Issuers: []*x509.Certificate{ca.Cert},
		CRLs: []*x509.RevocationList{makeCRL(t, ca, goldenNow.Add(-time.Hour), goldenNow.Add(time.Hour))}})
	if err := CheckRevocation(src, partner, goldenNow); err != nil {
		t.Fatal(err)
	}
	src, _ = NewRevocation(RevocationConfig{Issuers: []*x509.Certificate{ca.Cert},
		CRLs: []*x509.RevocationList{makeCRL(t, ca, goldenNow, goldenNow.Add(time.Hour), partner.SerialNumber)}})
	if err := CheckRevocation(src, partner, goldenNow); !errors.Is(err, ErrCertificateRevoked) {
		t.Fatalf("after refresh: %v", err)
	}
}

// A source that answers something else than the two sentinels is treated
// as unavailable, never as "not revoked".
func TestCheckRevocationUnknownError(t *testing.T) {
	err := CheckRevocation(revocationFunc(func(*x509.Certificate, time.Time) error { return errors.New("boom") }),
		goldenCert(t, "partner-rsa"), goldenNow)
	if !errors.Is(err, ErrRevocationUnavailable) || ClientError(err) {
		t.Fatalf("err = %v", err)
	}
}

type revocationFunc func(*x509.Certificate, time.Time) error

func (f revocationFunc) CheckRevocation(c *x509.Certificate, now time.Time) error { return f(c, now) }

func TestParseCRLs(t *testing.T) {
	ca := samlIdentity(t, "ca", false)
	crl := makeCRL(t, ca, goldenNow, goldenNow.Add(time.Hour), big.NewInt(5))
	two := append(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.Raw})...)
	got, err := ParseCRLs(two)
	if err != nil || len(got) != 2 {
		t.Fatalf("PEM: %d, %v", len(got), err)
	}
	if got, err = ParseCRLs(crl.Raw); err != nil || len(got) != 1 {
		t.Fatalf("DER: %d, %v", len(got), err)
	}
	for _, bad := range [][]byte{nil, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte("junk")} {
		if _, err := ParseCRLs(bad); err == nil {
			t.Errorf("ParseCRLs(%q) accepted", bad)
		}
	}
}

func TestParseThumbprints(t *testing.T) {
	fp := sha256.Sum256([]byte("x"))
	colon := strings.ToUpper(hex.EncodeToString(fp[:2])) + ":" + strings.ToUpper(hex.EncodeToString(fp[2:]))
	got, err := ParseThumbprints("# partners withdrawn\n" + hex.EncodeToString(fp[:]) + "\n\n" + colon + "\n")
	if err != nil || len(got) != 2 || got[0] != fp || got[1] != fp {
		t.Fatalf("got %x, %v", got, err)
	}
	if _, err := ParseThumbprints("abcd\nzz\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad lines: %v", err)
	}
}

func TestBuildRevocationAndSwap(t *testing.T) {
	ca := samlIdentity(t, "ca", false)
	partner := goldenCert(t, "partner-rsa")
	idp := goldenCert(t, "saml-idp")
	crlPEM := func(serials ...*big.Int) []byte {
		crl := makeCRL(t, ca, goldenNow.Add(-time.Hour), goldenNow.Add(time.Hour), serials...)
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.Raw})
	}
	issuers := []*x509.Certificate{ca.Cert}
	idpFP := sha256.Sum256(idp.Raw)

	var src SwappableRevocation
	if err := CheckRevocation(&src, partner, goldenNow); !errors.Is(err, ErrRevocationUnavailable) || ClientError(err) {
		t.Fatalf("before the first load: %v", err)
	}
	r, err := BuildRevocation(RevocationSecrets{CRLs: [][]byte{crlPEM()}, DenySHA256: hex.EncodeToString(idpFP[:])}, issuers)
	if err != nil {
		t.Fatal(err)
	}
	src.Store(r)
	if err := src.Ready(goldenNow); err != nil {
		t.Fatal(err)
	}
	if err := CheckRevocation(&src, partner, goldenNow); err != nil {
		t.Fatalf("partner: %v", err)
	}
	if err := CheckRevocation(&src, idp, goldenNow); !errors.Is(err, ErrCertificateRevoked) {
		t.Fatalf("denied idp: %v", err)
	}
	// Refresh: the partner is revoked now, and the verifier holding src
	// sees it on the next message.
	r, err = BuildRevocation(RevocationSecrets{CRLs: [][]byte{crlPEM(partner.SerialNumber)},
		DenyCertificates: pki.CertPEM(goldenCert(t, "keyusage"))}, issuers)
	if err != nil {
		t.Fatal(err)
	}
	src.Store(r)
	v := samlRouteVerifier(t, func(v *Verifier) { v.Revocation = &src })
	if _, err := v.Verify(t.Context(), goldenMessage(t, "saml-sv-str")); !errors.Is(err, ErrCertificateRevoked) {
		t.Fatalf("after refresh: %v", err)
	}
	if err := CheckRevocation(&src, goldenCert(t, "keyusage"), goldenNow); !errors.Is(err, ErrCertificateRevoked) {
		t.Fatalf("denied certificate: %v", err)
	}
	// A bad refresh fails closed, with every problem named.
	r, err = BuildRevocation(RevocationSecrets{CRLs: [][]byte{[]byte("junk"), crlPEM()},
		DenyCertificates: []byte("not pem"), DenySHA256: "zz"}, issuers)
	if err == nil || !strings.Contains(err.Error(), "crl 0") || !strings.Contains(err.Error(), "deny certificates") ||
		!strings.Contains(err.Error(), "deny sha256") {
		t.Fatalf("bad secrets: %v", err)
	}
	src.Store(r)
	if err := src.Ready(goldenNow); !errors.Is(err, ErrRevocationUnavailable) {
		t.Fatalf("Ready after a bad refresh: %v", err)
	}
	if err := CheckRevocation(&src, partner, goldenNow); !errors.Is(err, ErrRevocationUnavailable) {
		t.Fatalf("check after a bad refresh: %v", err)
	}
	// Stale: past the CRL's nextUpdate the route is not ready.
	r, _ = BuildRevocation(RevocationSecrets{CRLs: [][]byte{crlPEM()}}, issuers)
	src.Store(r)
	if err := src.Ready(goldenNow.Add(2 * time.Hour)); !errors.Is(err, ErrRevocationUnavailable) {
		t.Fatalf("stale: %v", err)
	}
}
