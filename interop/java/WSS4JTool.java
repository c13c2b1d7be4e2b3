// WSS4JTool encrypts, signs and decrypts SOAP envelopes with Apache WSS4J 1.6
// (Debian's libwss4j-java over Santuario), for wsgate's interop tests. It is
// compiled by interop/xmlenc_test.go; it is not part of wsgate.
//
//   encrypt  --cert C [--keyid ski|issuerserial|bst|thumbprint] [--sym URI]
//            [--header NS:LOCAL] [--sign-key K --sign-cert S [--order se|es]]
//            --in F --out F
//   decrypt  --key K --cert C [--trust T] --in F --out F
//
// Keys are PKCS#8 PEM, certificates PEM. decrypt prints the processed
// actions on stderr and writes the document with the Security header kept.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.*;
import java.security.cert.*;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.*;
import javax.security.auth.callback.*;
import javax.xml.parsers.*;
import javax.xml.transform.*;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.apache.ws.security.*;
import org.apache.ws.security.components.crypto.Merlin;
import org.apache.ws.security.message.*;
import org.w3c.dom.*;

public class WSS4JTool {
    static final char[] PW = "changeit".toCharArray();

    public static void main(String[] args) throws Exception {
        org.apache.xml.security.Init.init();
        Map<String, String> o = new HashMap<>();
        for (int i = 1; i + 1 < args.length; i += 2) o.put(args[i], args[i + 1]);
        Document doc = parse(Files.readAllBytes(Paths.get(o.get("--in"))));
        switch (args[0]) {
            case "encrypt": encrypt(doc, o); break;
            case "decrypt": decrypt(doc, o); break;
            default: throw new IllegalArgumentException(args[0]);
        }
        write(doc, o.get("--out"));
    }

    static void encrypt(Document doc, Map<String, String> o) throws Exception {
        X509Certificate recipient = cert(o.get("--cert"));
        KeyStore ks = KeyStore.getInstance("JKS");
        ks.load(null, null);
        ks.setCertificateEntry("recipient", recipient);
        String order = o.getOrDefault("--order", "");
        if (o.containsKey("--sign-key")) {
            X509Certificate sc = cert(o.get("--sign-cert"));
            ks.setKeyEntry("signer", key(o.get("--sign-key")), PW, new java.security.cert.Certificate[] {sc});
        }
        Merlin crypto = new Merlin();
        crypto.setKeyStore(ks);
        crypto.setTrustStore(ks);
        WSSecHeader sec = new WSSecHeader();
        sec.setMustUnderstand(true);
        sec.insertSecurityHeader(doc);
        String soapNS = doc.getDocumentElement().getNamespaceURI();
        if (order.equals("es")) { doEncrypt(doc, o, crypto, sec, soapNS); doSign(doc, crypto, sec, soapNS); }
        else if (order.equals("se")) { doSign(doc, crypto, sec, soapNS); doEncrypt(doc, o, crypto, sec, soapNS); }
        else doEncrypt(doc, o, crypto, sec, soapNS);
    }

    static void doSign(Document doc, Merlin crypto, WSSecHeader sec, String soapNS) throws Exception {
        WSSecTimestamp ts = new WSSecTimestamp();
        ts.setTimeToLive(300);
        ts.build(doc, sec);
        WSSecSignature sig = new WSSecSignature();
        sig.setUserInfo("signer", new String(PW));
        sig.setKeyIdentifierType(WSConstants.BST_DIRECT_REFERENCE);
        sig.setSignatureAlgorithm("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
        sig.setDigestAlgo("http://www.w3.org/2001/04/xmlenc#sha256");
        List<WSEncryptionPart> parts = new ArrayList<>();
        parts.add(new WSEncryptionPart("Body", soapNS, ""));
        parts.add(new WSEncryptionPart("Timestamp", WSConstants.WSU_NS, ""));
        sig.setParts(parts);
        sig.build(doc, crypto, sec);
    }

    static void doEncrypt(Document doc, Map<String, String> o, Merlin crypto, WSSecHeader sec, String soapNS) throws Exception {
        WSSecEncrypt enc = new WSSecEncrypt();
        enc.setUserInfo("recipient");
        switch (o.getOrDefault("--keyid", "ski")) {
            case "ski": enc.setKeyIdentifierType(WSConstants.SKI_KEY_IDENTIFIER); break;
            case "issuerserial": enc.setKeyIdentifierType(WSConstants.ISSUER_SERIAL); break;
            case "bst": enc.setKeyIdentifierType(WSConstants.BST_DIRECT_REFERENCE); break;
            case "thumbprint": enc.setKeyIdentifierType(WSConstants.THUMBPRINT_IDENTIFIER); break;
            default: throw new IllegalArgumentException("--keyid");
        }
        enc.setSymmetricEncAlgorithm(o.getOrDefault("--sym", WSConstants.AES_128_GCM));
        enc.setKeyEnc(WSConstants.KEYTRANSPORT_RSAOEP);
        List<WSEncryptionPart> parts = new ArrayList<>();
        if (o.containsKey("--header")) {
            String[] h = o.get("--header").split(" ");
            parts.add(new WSEncryptionPart(h[1], h[0], "Header"));
        }
        parts.add(new WSEncryptionPart("Body", soapNS, "Content"));
        enc.setParts(parts);
        enc.build(doc, crypto, sec);
    }

    static void decrypt(Document doc, Map<String, String> o) throws Exception {
        KeyStore ks = KeyStore.getInstance("JKS");
        ks.load(null, null);
        ks.setKeyEntry("gateway", key(o.get("--key")), PW, new java.security.cert.Certificate[] {cert(o.get("--cert"))});
        if (o.containsKey("--trust")) ks.setCertificateEntry("trust", cert(o.get("--trust")));
        Merlin crypto = new Merlin();
        crypto.setKeyStore(ks);
        crypto.setTrustStore(ks);
        CallbackHandler cb = callbacks -> {
            for (Callback c : callbacks) ((WSPasswordCallback) c).setPassword(new String(PW));
        };
        WSSecurityEngine engine = new WSSecurityEngine();
        List<WSSecurityEngineResult> results = engine.processSecurityHeader(doc, null, cb, crypto);
        if (results == null || results.isEmpty()) throw new IllegalStateException("no security results");
        for (WSSecurityEngineResult r : results) System.err.println("action " + r.get(WSSecurityEngineResult.TAG_ACTION));
    }

    static Document parse(byte[] b) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return f.newDocumentBuilder().parse(new ByteArrayInputStream(b));
    }

    static void write(Document doc, String path) throws Exception {
        Transformer t = TransformerFactory.newInstance().newTransformer();
        t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
        try (OutputStream out = Files.newOutputStream(Paths.get(path))) {
            t.transform(new DOMSource(doc), new StreamResult(out));
        }
    }

    static X509Certificate cert(String path) throws Exception {
        try (InputStream in = Files.newInputStream(Paths.get(path))) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    static PrivateKey key(String path) throws Exception {
        String pem = new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.US_ASCII);
        String b64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(b64)));
    }
}
