// Command wsbench is the Go half of bench/run.sh (issue 7): it makes the
// benchmark's keys, envelopes, tokens and wsgate configuration, measures
// wssec verification in-process on one core, and serves a minimal upstream.
// It is a measuring tool, not part of wsgate; see bench/README.md.
//
//	wsbench upstream -addr-file F           serve a fixed reply; write the address to F
//	wsbench floor -upstream URL -addr-file F  the Go floor: a bare net/http reverse proxy to URL
//	wsbench gen -dir D -upstream URL        keys, envelopes, JWT, wsgate.yaml and secrets in D
//	wsbench gen-wrk -dir D -n N -out F      N distinct signed RSA-2048 envelopes for wrk, in F.<thread>
//	wsbench verify -dir D -duration 3s      wssec verifications per second on one core (TSV)
//	wsbench decrypt -dir D -duration 3s     wssec decrypt+verify per second on one core (TSV)
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/pki"
	"wsgate/proxy"
	"wsgate/wssec"
)

// Envelope sizes and key types measured, as named in the table.
var (
	sizes = []struct {
		name string
		body int
	}{{"2KB", 2 << 10}, {"64KB", 64 << 10}, {"1MB", 1 << 20}}
	keys = []string{"rsa2048", "ecp256"}
)

// encSeed seeds the session keys, IVs, nonces and IDs of the encrypted
// envelopes, so that gen writes the same structure every run (the RSA keys
// and OAEP padding stay random: crypto/rsa draws its own randomness).
const encSeed = "wsbench decrypt+verify envelopes"

// wrkSeparator ends each envelope in the file wrk's Lua script reads.
const wrkSeparator = "\n--MSG--\n"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wsbench upstream|floor|gen|gen-wrk|verify|decrypt [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "upstream":
		err = upstream(args)
	case "floor":
		err = floor(args)
	case "gen":
		err = gen(args)
	case "gen-wrk":
		err = genWrk(args)
	case "verify":
		err = verify(args)
	case "decrypt":
		err = decrypt(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
}

// upstream answers every request with a small fixed reply, like a fast
// backend, so that what is measured is the gateway.
func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	addrFile := fs.String("addr-file", "", "write the listening address here")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()), 0o600); err != nil {
		return err
	}
	const soapReply = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><b:Ack xmlns:b="urn:wsgate:bench"/></soap:Body></soap:Envelope>`
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost {
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			_, _ = io.WriteString(w, soapReply)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
}

// floor is the Go floor under wsgate's public route (issue 18): the
// standard library's HTTP server and httputil.ReverseProxy over the same
// upstream transport wsgate uses (proxy.H1Transport), and nothing else: no
// front door, router, checks, metrics or access log. Its ratio to nginx is
// what net/http itself costs on this machine; wsgate's ratio to it is what
// wsgate adds.
func floor(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	up := fs.String("upstream", "", "upstream base URL (http)")
	addrFile := fs.String("addr-file", "", "write the listening address here")
	_ = fs.Parse(args)
	target, err := url.Parse(*up)
	if err != nil {
		return err
	}
	base := proxy.NewTransport()
	tr, err := proxy.NewH1Transport(*up, base.DialContext, base, proxy.MaxIdleConnsPerUpstream, proxy.UpstreamIdleTimeout, nil)
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()), 0o600); err != nil {
		return err
	}
	return http.Serve(ln, rp)
}

// envelope is a SOAP 1.1 request whose Body holds about size bytes.
func envelope(size int, tag string) []byte {
	var b strings.Builder
	b.WriteString(`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders"><soapenv:Header/><soapenv:Body><ord:order id="` + tag + `">`)
	for n := 0; b.Len() < size; n++ {
		fmt.Fprintf(&b, `<ord:line n="%d">widget</ord:line>`, n)
	}
	b.WriteString(`</ord:order></soapenv:Body></soapenv:Envelope>`)
	return []byte(b.String())
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	up := fs.String("upstream", "", "upstream base URL")
	_ = fs.Parse(args)

	var is pki.Issuer
	ca, err := is.Issue(pki.Options{CommonName: "wsbench CA", IsCA: true, Key: pki.RSA2048}, nil)
	if err != nil {
		return err
	}
	if err := write(*dir, "ca.pem", pki.CertPEM(ca.Cert)); err != nil {
		return err
	}
	for _, kt := range keys {
		id, err := is.Issue(pki.Options{CommonName: "wsbench partner " + kt, Key: pki.KeyType(kt)}, ca)
		if err != nil {
			return err
		}
		keyPEM, err := pki.KeyPEM(id.Key)
		if err != nil {
			return err
		}
		if err := write(*dir, kt+"-cert.pem", pki.CertPEM(id.Cert)); err != nil {
			return err
		}
		if err := write(*dir, kt+"-key.pem", keyPEM); err != nil {
			return err
		}
		s := &wssec.Signer{Chain: []*x509.Certificate{id.Cert}, Key: id.Key, TTL: time.Hour}
		for _, sz := range sizes {
			msg, err := s.SignBytes(envelope(sz.body, kt+"-"+sz.name), wssec.Limits{MaxBytes: 8 << 20})
			if err != nil {
				return err
			}
			if err := write(*dir, filepath.Join("env", kt+"-"+sz.name+".xml"), msg); err != nil {
				return err
			}
		}
	}
	if err := genEncrypted(*dir, &is, ca, time.Now().UTC().Truncate(time.Second)); err != nil {
		return err
	}
	if err := write(*dir, "signed-at.txt", []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return err
	}

	// REST: an HS256 key in the file backend and a token valid for an hour.
	hmacKey := make([]byte, 32)
	if _, err := rand.Read(hmacKey); err != nil {
		return err
	}
	secret, _ := json.Marshal(map[string]string{"secret": base64.StdEncoding.EncodeToString(hmacKey)})
	if err := write(*dir, "secrets/wsgate/jwks/bench.json", secret); err != nil {
		return err
	}
	trust, _ := json.Marshal(map[string]string{"certificates": string(pki.CertPEM(ca.Cert))})
	if err := write(*dir, "secrets/wsgate/trust/partners.json", trust); err != nil {
		return err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: hmacKey}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return err
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: "https://idp.bench.invalid/", Audience: jwt.Audience{"bench"}, Subject: "wsbench",
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
	}).Serialize()
	if err != nil {
		return err
	}
	if err := write(*dir, "token.txt", []byte(tok)); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: info, format: json}
limits: {max_body_bytes: 10485760}
secrets:
  backend: file
  file: {dir: secrets}
routes:
  - name: soap
    path_prefix: /soap/orders
    upstream: %[1]s/ws/orders
    soap:
      trust: wsgate/trust/partners
      require_signed: [body, timestamp]
      timestamp: {ttl: 900s}
  - name: rest
    path_prefix: /api/bench
    upstream: %[1]s/api
    oauth:
      issuer: https://idp.bench.invalid/
      audience: [bench]
      jwks_secret: wsgate/jwks/bench
      algorithms: [HS256]
  - name: public
    path_prefix: /public
    upstream: %[1]s/ws/orders
    public: true
`, *up)
	return write(*dir, "wsgate.yaml", []byte(cfg))
}

// genWrk signs n distinct copies of the 2 KB envelope with the RSA-2048
// partner (the replay cache refuses a message seen before), on every core.
func genWrk(args []string) error {
	fs := flag.NewFlagSet("gen-wrk", flag.ExitOnError)
	dir := fs.String("dir", "", "directory made by gen")
	n := fs.Int("n", 20000, "number of envelopes")
	out := fs.String("out", "", "output file prefix: one file per wrk thread, out.0, out.1, ...")
	threads := fs.Int("threads", 2, "wrk threads")
	_ = fs.Parse(args)
	cert, key, err := loadIdentity(*dir, "rsa2048")
	if err != nil {
		return err
	}
	s := &wssec.Signer{Chain: []*x509.Certificate{cert}, Key: key, TTL: time.Hour}
	msgs := make([][]byte, *n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < *n; i += len(errs) {
				if msgs[i], errs[w] = s.SignBytes(envelope(2<<10, fmt.Sprint("wrk-", i)), wssec.Limits{}); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for t := range *threads {
		f, err := os.Create(fmt.Sprintf("%s.%d", *out, t))
		if err != nil {
			return err
		}
		for i := t; i < len(msgs); i += *threads {
			if strings.Contains(string(msgs[i]), wrkSeparator) {
				return fmt.Errorf("envelope contains the separator")
			}
			_, _ = f.Write(msgs[i])
			_, _ = io.WriteString(f, wrkSeparator)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

func loadIdentity(dir, kt string) (*x509.Certificate, crypto.Signer, error) {
	certs, err := readCerts(filepath.Join(dir, kt+"-cert.pem"))
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, kt+"-key.pem"))
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKey(b)
	return certs[0], key, err
}

type staticCerts []*x509.Certificate

func (s staticCerts) Certificates() ([]*x509.Certificate, error) { return s, nil }

// verify measures wssec on one core: each envelope verified in a loop for
// the duration, plus raw RSA-2048 and ECDSA P-256 verification of a SHA-256
// digest, the floor the XML work is compared with.
func verify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	dir := fs.String("dir", "", "directory made by gen")
	duration := fs.Duration("duration", 3*time.Second, "time per envelope")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(1)

	trust, signedAt, err := readTrust(*dir)
	if err != nil {
		return err
	}
	now := signedAt.Add(time.Minute) // judge freshness as of just after signing
	v := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticCerts(trust),
		Now:    func() time.Time { return now },
	}
	fmt.Println("name\tbytes\tper_second")
	for _, kt := range keys {
		for _, sz := range sizes {
			if err := measureEnvelope(v, *dir, kt+"-"+sz.name, *duration); err != nil {
				return err
			}
		}
		cert, key, err := loadIdentity(*dir, kt)
		if err != nil {
			return err
		}
		digest := sha256.Sum256([]byte("signed info"))
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return err
		}
		rate, err := loop(*duration, func() error {
			switch pub := cert.PublicKey.(type) {
			case *rsa.PublicKey:
				return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, digest[:], sig) {
					return fmt.Errorf("ecdsa verify failed")
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Printf("raw-%s\t0\t%.1f\n", kt, rate)
	}
	return nil
}

// readTrust reads the CA and the signing time that gen wrote into dir.
func readTrust(dir string) ([]*x509.Certificate, time.Time, error) {
	trust, err := readCerts(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, time.Time{}, err
	}
	at, err := os.ReadFile(filepath.Join(dir, "signed-at.txt"))
	if err != nil {
		return nil, time.Time{}, err
	}
	signedAt, err := time.Parse(time.RFC3339, string(at))
	if err != nil {
		return nil, time.Time{}, err
	}
	return trust, signedAt, nil
}

// measureEnvelope verifies dir/env/name.xml with v in a loop for d and
// prints its rate. As the SOAP edge does it: the body as a string (kept by
// the parser without a copy), the tree released after use.
func measureEnvelope(v *wssec.Verifier, dir, name string, d time.Duration) error {
	raw, err := os.ReadFile(filepath.Join(dir, "env", name+".xml"))
	if err != nil {
		return err
	}
	msg := string(raw)
	rate, err := loop(d, func() error {
		env, err := wssec.ParseEnvelope(msg, v.Policy.Limits)
		if err != nil {
			return err
		}
		_, err = v.VerifyEnvelope(context.Background(), env)
		env.Release()
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Printf("%s\t%d\t%.1f\n", name, len(msg), rate)
	return nil
}

// loop runs f until d has passed (at least 3 times) and returns calls per second.
func loop(d time.Duration, f func() error) (float64, error) {
	if err := f(); err != nil { // warm caches (certificate memo) outside the timing
		return 0, err
	}
	start := time.Now()
	n := 0
	for n < 3 || time.Since(start) < d {
		if err := f(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func write(dir, name string, b []byte) error {
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o600)
}

func readCerts(name string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", name)
	}
	return out, nil
}

// parseKey reads the PKCS#8 PEM that pki.KeyPEM writes.
func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", k)
	}
	return s, nil
}

// genEncrypted writes the decrypt+verify envelopes (issue 13): the 2 KB,
// 64 KB and 1 MB Bodies signed by the RSA-2048 partner (Timestamp + Body,
// as gen signs them), then the Body content encrypted for the gateway the
// way WSS4J does by default ("Signature Encrypt": rsa-oaep-mgf1p key
// transport with RSA-2048, AES-128-GCM, recipient by SKI, the EncryptedKey
// first in the header). Also the gateway's certificate and key, which both
// sides decrypt with. Session keys, IVs and IDs come from a seeded stream
// and the clock is fixed at signedAt, so every run writes the same shape.
func genEncrypted(dir string, is *pki.Issuer, ca *pki.Identity, signedAt time.Time) error {
	gw, err := is.Issue(pki.Options{CommonName: "wsbench gateway", Key: pki.RSA2048,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, ca)
	if err != nil {
		return err
	}
	keyPEM, err := pki.KeyPEM(gw.Key)
	if err != nil {
		return err
	}
	if err := write(dir, "gateway-cert.pem", pki.CertPEM(gw.Cert)); err != nil {
		return err
	}
	if err := write(dir, "gateway-key.pem", keyPEM); err != nil {
		return err
	}
	cert, key, err := loadIdentity(dir, "rsa2048")
	if err != nil {
		return err
	}
	var seed [32]byte
	copy(seed[:], encSeed)
	random := mrand.NewChaCha8(seed)
	n := 0
	newID := func() string { n++; return fmt.Sprintf("wsbench-%d", n) }
	now := func() time.Time { return signedAt }
	s := &wssec.Signer{Chain: []*x509.Certificate{cert}, Key: key, TTL: time.Hour, Now: now, NewID: newID, Rand: random}
	opts := wssec.EncryptOptions{Rand: random, NewID: newID, Now: now} // the defaults: rsa-oaep-mgf1p, AES-128-GCM, SKI
	limits := wssec.Limits{MaxBytes: 8 << 20}
	for _, sz := range sizes {
		env, err := wssec.ParseEnvelope(envelope(sz.body, "enc-"+sz.name), limits)
		if err != nil {
			return err
		}
		msg, err := wssec.SignThenEncrypt(env, s, gw.Cert, opts)
		env.Release()
		if err != nil {
			return err
		}
		if err := write(dir, filepath.Join("env", "enc-"+sz.name+".xml"), msg); err != nil {
			return err
		}
	}
	return nil
}

// decrypt measures wssec decrypt+verify on one core: each encrypted
// envelope processed in a loop for the duration by a Verifier with
// Policy.Decrypt, as a SOAP route with decrypt does it: the EncryptedKey
// unwrapped with the gateway's RSA key (no session key kept between
// messages), the Body decrypted, then the signature, chain, Timestamp and
// what-is-signed checked over the plaintext.
func decrypt(args []string) error {
	fs := flag.NewFlagSet("decrypt", flag.ExitOnError)
	dir := fs.String("dir", "", "directory made by gen")
	duration := fs.Duration("duration", 3*time.Second, "time per envelope")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(1)

	trust, signedAt, err := readTrust(*dir)
	if err != nil {
		return err
	}
	gwCert, err := readCerts(filepath.Join(*dir, "gateway-cert.pem"))
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*dir, "gateway-key.pem"))
	if err != nil {
		return err
	}
	gwKey, err := parseKey(b)
	if err != nil {
		return err
	}
	dec, ok := gwKey.(crypto.Decrypter)
	if !ok {
		return fmt.Errorf("gateway key %T cannot decrypt", gwKey)
	}
	now := signedAt.Add(time.Minute)
	v := &wssec.Verifier{
		Policy: wssec.Policy{
			RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp},
			Decrypt: &wssec.DecryptPolicy{
				Identity:         wssec.StaticIdentity{Cert: gwCert[0], Key: dec},
				RequireEncrypted: []wssec.Part{wssec.PartBody},
			},
		},
		Trust: staticCerts(trust),
		Now:   func() time.Time { return now },
	}
	fmt.Println("name\tbytes\tper_second")
	for _, sz := range sizes {
		if err := measureEnvelope(v, *dir, "enc-"+sz.name, *duration); err != nil {
			return err
		}
	}
	// The floor: unwrapping a 16-byte session key with RSA-2048 OAEP (SHA-1,
	// as rsa-oaep-mgf1p), the private-key operation every message pays.
	pub, ok := gwCert[0].PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("gateway key is %T, not RSA", gwCert[0].PublicKey)
	}
	wrapped, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, make([]byte, 16), nil)
	if err != nil {
		return err
	}
	rate, err := loop(*duration, func() error {
		_, err := dec.Decrypt(rand.Reader, wrapped, &rsa.OAEPOptions{Hash: crypto.SHA1})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("raw-rsa2048-oaep\t0\t%.1f\n", rate)
	return nil
}
