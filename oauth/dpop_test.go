package oauth

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// memReplay is a ReplayStore; down makes it fail like an unreachable Redis.
type memReplay struct {
	mu   sync.Mutex
	seen map[[32]byte]time.Time
	down bool
}

func (m *memReplay) Remember(_ context.Context, k [32]byte, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return false, errors.New("connection refused")
	}
	if m.seen == nil {
		m.seen = map[[32]byte]time.Time{}
	}
	_, ok := m.seen[k]
	m.seen[k] = until
	return ok, nil
}

const testHTU = "https://api.example.com/billing/invoices"

func athOf(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func jktOf(t testing.TB, pub any) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// dpopProof mints a proof the way RFC 9449 clients do (go-jose, embedded jwk).
func dpopProof(t testing.TB, alg jose.SignatureAlgorithm, key any, claims map[string]any, mut func(*jose.SignerOptions)) string {
	t.Helper()
	o := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	if mut != nil {
		mut(o)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func proofClaims(tok string) map[string]any {
	return map[string]any{"jti": "p-1", "htm": "GET", "htu": testHTU, "iat": t0.Unix(), "ath": athOf(tok)}
}

func TestDPoPVerify(t *testing.T) {
	k := tk(t)
	clock := newClock()
	store := &memReplay{}
	d, err := NewDPoPVerifier(DPoPOptions{MaxAge: time.Minute, Replay: store, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	const raw = "eyJ.access.token"
	jkt := jktOf(t, k.p256.Public())
	bound := &Token{Claims: map[string]any{"cnf": map[string]any{"jkt": jkt}}}
	with := func(kv ...any) map[string]any {
		c := proofClaims(raw)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	good := dpopProof(t, jose.ES256, k.p256, with(), nil)
	p, err := d.Verify(context.Background(), good, "GET", testHTU, raw, bound)
	if err != nil || p.JKT != jkt || p.JTI != "p-1" {
		t.Fatalf("good proof: %+v %v", p, err)
	}
	// The same proof again is a replay.
	if _, err := d.Verify(context.Background(), good, "GET", testHTU, raw, bound); !errors.Is(err, ErrDPoPReplay) {
		t.Fatalf("replay: %v", err)
	}

	hmacSigner := func() string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: k.hmac}, (&jose.SignerOptions{}).WithType("dpop+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := jwt.Signed(s).Claims(with("jti", "hs")).Serialize()
		return p
	}
	// A proof carrying the private key in its jwk header.
	privJWK := func() string {
		priv := jose.JSONWebKey{Key: k.p256}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.p256},
			(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", priv))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := jwt.Signed(s).Claims(with("jti", "priv")).Serialize()
		return p
	}
	other := dpopProof(t, jose.ES384, k.p384, with("jti", "other"), nil) // valid, another key
	tampered := strings.Split(dpopProof(t, jose.ES256, k.p256, with("jti", "t"), nil), ".")
	tampered[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"t2","htm":"GET","htu":"` + testHTU + `","iat":` + "1795000000" + `,"ath":"` + athOf(raw) + `"}`))

	for _, tc := range []struct {
		name   string
		proof  string
		method string
		htu    string
		tok    *Token
		want   error
	}{
		{"alg none", unsignedNone(with("jti", "none")), "GET", testHTU, bound, ErrDPoPProof},
		{"HMAC", hmacSigner(), "GET", testHTU, bound, ErrDPoPProof},
		{"private jwk", privJWK(), "GET", testHTU, bound, ErrDPoPProof},
		{"no jwk", dpopProof(t, jose.ES256, k.p256, with("jti", "nojwk"), func(o *jose.SignerOptions) { o.EmbedJWK = false }), "GET", testHTU, bound, ErrDPoPProof},
		{"typ JWT", dpopProof(t, jose.ES256, k.p256, with("jti", "typ"), func(o *jose.SignerOptions) { o.WithType("JWT") }), "GET", testHTU, bound, ErrDPoPProof},
		{"crit", dpopProof(t, jose.ES256, k.p256, with("jti", "crit"), func(o *jose.SignerOptions) { o.WithHeader("crit", []string{"exp"}).WithHeader("exp", 1) }), "GET", testHTU, bound, ErrDPoPProof},
		{"tampered payload", strings.Join(tampered, "."), "GET", testHTU, bound, ErrDPoPProof},
		{"htm", dpopProof(t, jose.ES256, k.p256, with("jti", "htm"), nil), "POST", testHTU, bound, ErrDPoPProof},
		{"htm case", dpopProof(t, jose.ES256, k.p256, with("jti", "htmc", "htm", "get"), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"htu path", dpopProof(t, jose.ES256, k.p256, with("jti", "htu1", "htu", "https://api.example.com/billing/other"), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"htu host", dpopProof(t, jose.ES256, k.p256, with("jti", "htu2", "htu", "https://evil.example.com/billing/invoices"), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"htu scheme", dpopProof(t, jose.ES256, k.p256, with("jti", "htu3", "htu", "http://api.example.com/billing/invoices"), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"htu missing", dpopProof(t, jose.ES256, k.p256, with("jti", "htu4", "htu", nil), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"iat old", dpopProof(t, jose.ES256, k.p256, with("jti", "old", "iat", t0.Add(-61*time.Second).Unix()), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"iat future", dpopProof(t, jose.ES256, k.p256, with("jti", "fut", "iat", t0.Add(6*time.Second).Unix()), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"iat missing", dpopProof(t, jose.ES256, k.p256, with("jti", "noiat", "iat", nil), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"iat string", dpopProof(t, jose.ES256, k.p256, with("jti", "siat", "iat", "1795000000"), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"ath other token", dpopProof(t, jose.ES256, k.p256, with("jti", "ath", "ath", athOf("other")), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"ath missing", dpopProof(t, jose.ES256, k.p256, with("jti", "noath", "ath", nil), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"jti missing", dpopProof(t, jose.ES256, k.p256, with("jti", nil), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"jti too long", dpopProof(t, jose.ES256, k.p256, with("jti", strings.Repeat("j", 257)), nil), "GET", testHTU, bound, ErrDPoPProof},
		{"not a JWS", "abc", "GET", testHTU, bound, ErrDPoPProof},
		{"other key", other, "GET", testHTU, bound, ErrDPoPBinding},
		{"unbound token", dpopProof(t, jose.ES256, k.p256, with("jti", "unbound"), nil), "GET", testHTU, &Token{Claims: map[string]any{}}, ErrDPoPBinding},
	} {
		_, err := d.Verify(context.Background(), tc.proof, tc.method, tc.htu, raw, tc.tok)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}

	// Every refusal above left the replay store untouched but the first proof's.
	if len(store.seen) != 1 {
		t.Errorf("replay store holds %d entries, want 1", len(store.seen))
	}

	// Other algorithms and a normalized htu pass.
	for i, tc := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
		htu string
	}{
		{jose.EdDSA, k.ed, "HTTPS://API.example.com:443/billing/invoices?x=1#f"},
		{jose.PS256, k.rsa, "https://api.example.com/billing/%69nvoices"},
		{jose.ES512, k.p521, testHTU},
	} {
		c := with("jti", "alg"+string(rune('a'+i)), "htu", tc.htu)
		tok := &Token{Claims: map[string]any{"cnf": map[string]any{"jkt": jktOf(t, tc.key.Public())}}}
		if _, err := d.Verify(context.Background(), dpopProof(t, tc.alg, tc.key, c, nil), "GET", testHTU, raw, tok); err != nil {
			t.Errorf("%s: %v", tc.alg, err)
		}
	}

	// A replay store that is down refuses (503), never "not seen".
	store.down = true
	_, err = d.Verify(context.Background(), dpopProof(t, jose.ES256, k.p256, with("jti", "down"), nil), "GET", testHTU, raw, bound)
	if !errors.Is(err, ErrReplayUnavailable) || ClientError(err) {
		t.Fatalf("store down: %v", err)
	}
}

// unsignedNone builds an alg-none proof by hand (go-jose will not sign one).
func unsignedNone(c map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"dpop+jwt"}`))
	b, _ := json.Marshal(c)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

func TestDPoPConfig(t *testing.T) {
	for _, o := range []DPoPOptions{
		{},
		{Replay: &memReplay{}, Algorithms: []string{"HS256"}},
		{Replay: &memReplay{}, Algorithms: []string{"none"}},
		{Replay: &memReplay{}, MaxAge: -time.Second},
	} {
		if _, err := NewDPoPVerifier(o); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func TestCredentialsFromRequest(t *testing.T) {
	for _, tc := range []struct {
		auth   []string
		scheme string
		want   error
	}{
		{[]string{"Bearer a.b.c"}, SchemeBearer, nil},
		{[]string{"dpop a.b.c"}, SchemeDPoP, nil},
		{[]string{"DPoP "}, "", ErrMalformed},
		{[]string{"DPoP a b"}, "", ErrMalformed},
		{[]string{"Basic x"}, "", ErrNoToken},
		{nil, "", ErrNoToken},
		{[]string{"DPoP a.b.c", "Bearer a.b.c"}, "", ErrMultipleAuthorization},
	} {
		r := httptest.NewRequest("GET", "/x", nil)
		for _, a := range tc.auth {
			r.Header.Add("Authorization", a)
		}
		s, _, err := CredentialsFromRequest(r)
		if !errors.Is(err, tc.want) || (err == nil && s != tc.scheme) {
			t.Errorf("%q: %q %v", tc.auth, s, err)
		}
	}
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Add("DPoP", "a.b.c")
	r.Header.Add("DPoP", "d.e.f")
	if _, err := ProofFromRequest(r); !errors.Is(err, ErrDPoPProof) {
		t.Fatal(err)
	}
}

func TestRequestHTU(t *testing.T) {
	r := httptest.NewRequest("GET", "http://api.example.com/billing/x?q=1", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := RequestHTU(r, false); got != "http://api.example.com/billing/x" {
		t.Errorf("untrusted: %s", got)
	}
	if got := RequestHTU(r, true); got != "https://api.example.com/billing/x" {
		t.Errorf("trusted: %s", got)
	}
	r.Header.Add("X-Forwarded-Proto", "http")
	if got := RequestHTU(r, true); got != "http://api.example.com/billing/x" {
		t.Errorf("two values: %s", got)
	}
	r.TLS = &tls.ConnectionState{}
	if got := RequestHTU(r, false); got != "https://api.example.com/billing/x" {
		t.Errorf("tls: %s", got)
	}
}

func TestCertificateBinding(t *testing.T) {
	der := []byte("a DER certificate")
	sum := sha256.Sum256(der)
	tok := &Token{Claims: map[string]any{"cnf": map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}}}
	if err := CheckCertificateBinding(tok, der); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		tok *Token
		der []byte
	}{
		"no cert":     {tok, nil},
		"other cert":  {tok, []byte("another certificate")},
		"no cnf":      {&Token{Claims: map[string]any{}}, der},
		"cnf string":  {&Token{Claims: map[string]any{"cnf": "x"}}, der},
		"padded hash": {&Token{Claims: map[string]any{"cnf": map[string]any{"x5t#S256": base64.URLEncoding.EncodeToString(sum[:])}}}, der},
	} {
		if err := CheckCertificateBinding(tc.tok, tc.der); !errors.Is(err, ErrCertificateBinding) || Reason(err) != "certificate_binding" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDPoPProof(f *testing.F) {
	k := tk(f)
	f.Add(dpopProof(f, jose.ES256, k.p256, proofClaims("t"), nil), "GET", testHTU)
	f.Add(dpopProof(f, jose.EdDSA, k.ed, proofClaims("t"), nil), "POST", "https://x/")
	f.Add("e30.e30.", "GET", "http://[::1]:80")
	d, err := NewDPoPVerifier(DPoPOptions{Replay: &memReplay{}, Now: func() time.Time { return t0 }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, proof, method, htu string) {
		p, err := d.CheckProof(proof, method, htu, "t")
		if err != nil && !errors.Is(err, ErrDPoPProof) {
			t.Fatalf("error %v is not ErrDPoPProof", err)
		}
		if err == nil && (p.JKT == "" || p.JTI == "") {
			t.Fatalf("accepted proof without jkt or jti: %+v", p)
		}
	})
}
