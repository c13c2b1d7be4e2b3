#!/usr/bin/python3
"""Encrypt a SOAP envelope's Body content with python-xmlsec, WS-Security style.

libxmlsec1's EncryptionContext does the cryptography: a session key, the
Body content encrypted under it (Type Content), and an EncryptedKey holding
the session key wrapped for the recipient certificate with rsa-oaep-mgf1p.
This script then only moves that EncryptedKey, as WS-Security 1.1 wants it,
into wsse:Security with a ReferenceList. Used by interop/xmlenc_test.go.

    xmlenc_python.py --cert C --in F --out F [--keyref issuerserial|ski]
                     [--cipher aes128-gcm|aes256-gcm|aes128-cbc] [--after-signature]
"""
import argparse

import xmlsec
from lxml import etree

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"

CIPHERS = {
    "aes128-gcm": (xmlsec.constants.TransformAes128Gcm, 128),
    "aes256-gcm": (xmlsec.constants.TransformAes256Gcm, 256),
    "aes128-cbc": (xmlsec.constants.TransformAes128Cbc, 128),
}


def child(el, ns, local):
    for c in el:
        if c.tag == "{%s}%s" % (ns, local):
            return c
    raise SystemExit("no %s in %s" % (local, el.tag))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--keyref", default="issuerserial", choices=["issuerserial", "ski"])
    ap.add_argument("--cipher", default="aes128-gcm", choices=sorted(CIPHERS))
    ap.add_argument("--after-signature", action="store_true",
                    help="put the EncryptedKey after an existing ds:Signature (encrypt-then-sign layout)")
    a = ap.parse_args()

    doc = etree.parse(a.inp)
    root = doc.getroot()
    soap = etree.QName(root).namespace
    body = root.find("{%s}Body" % soap)
    header = root.find("{%s}Header" % soap)
    if header is None:
        header = etree.Element("{%s}Header" % soap)
        root.insert(list(root).index(body), header)
    security = header.find("{%s}Security" % WSSE)
    if security is None:
        security = etree.SubElement(header, "{%s}Security" % WSSE, nsmap={"wsse": WSSE})
        header.insert(0, security)

    transform, bits = CIPHERS[a.cipher]
    enc_data = xmlsec.template.encrypted_data_create(
        root, transform, type=xmlsec.constants.TypeEncContent, ns="xenc", id="ED-py1")
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(enc_data, ns="dsig")
    enc_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_key)
    ek_info = xmlsec.template.encrypted_data_ensure_key_info(enc_key, ns="dsig")
    x509 = xmlsec.template.add_x509_data(ek_info)
    if a.keyref == "issuerserial":
        xmlsec.template.x509_data_add_issuer_serial(x509)
    else:
        xmlsec.template.x509_data_add_ski(x509)

    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(a.cert, xmlsec.constants.KeyDataFormatCertPem))
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, bits, xmlsec.constants.KeyDataTypeSession)
    enc_data = ctx.encrypt_xml(enc_data, body)

    # Move the EncryptedKey into wsse:Security and say what it unlocks.
    enc_key = enc_data.find(".//{%s}EncryptedKey" % XENC)
    ki = enc_key.getparent()
    ki.remove(enc_key)
    ki.getparent().remove(ki)
    enc_key.set("Id", "EK-py1")
    ek_ki = child(enc_key, DS, "KeyInfo")
    if a.keyref == "issuerserial":  # the WSS X.509 token profile form
        x509 = child(ek_ki, DS, "X509Data")
        str_ = etree.SubElement(ek_ki, "{%s}SecurityTokenReference" % WSSE, nsmap={"wsse": WSSE})
        ek_ki.remove(x509)
        str_.append(x509)
    rl = etree.SubElement(enc_key, "{%s}ReferenceList" % XENC)
    etree.SubElement(rl, "{%s}DataReference" % XENC, URI="#ED-py1")
    pos = 0
    if a.after_signature:
        pos = len(security)
    security.insert(pos, enc_key)
    doc.write(a.out)


if __name__ == "__main__":
    main()
