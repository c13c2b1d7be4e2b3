#!/usr/bin/python3
"""libxmlsec1 (python3-xmlsec) side of bench/run.sh's decrypt+verify table
(issue 13): processes the encrypted envelopes that `wsbench gen` wrote
(env/enc-*.xml: signed by the RSA-2048 partner, then the Body content
encrypted for the gateway, rsa-oaep-mgf1p + AES-128-GCM, the EncryptedKey
first in wsse:Security) in-process in a loop on one core, and prints
messages per second as TSV. Usage: xmlsec_decrypt.py DIR SECONDS

Per message, the same work as wssec: parse with lxml; decrypt the
xenc:EncryptedKey with the gateway's RSA-2048 private key (a new
EncryptionContext each time: no session key is kept between messages);
decrypt every EncryptedData its ReferenceList names with that AES-128 key,
in place; then verify the signature over the plaintext as xmlsec_verify.py
does. As there, libxmlsec1 is handed the keys (the gateway's, and the
signer's certificate) rather than resolving the SecurityTokenReferences, and
checks no chain, Timestamp or what is signed, which favours it.
"""
import sys

import xmlsec
from lxml import etree

from xmlsec_verify import NS, PARSER, rate, verify_doc

XENC = "http://www.w3.org/2001/04/xmlenc#"
NS = dict(NS, xenc=XENC)


def decrypt_verify(msg, gw_key, signer_key):
    doc = etree.fromstring(msg, PARSER)
    ek = doc.find(".//wsse:Security/xenc:EncryptedKey", NS)
    ctx = xmlsec.EncryptionContext()
    ctx.key = gw_key
    session = ctx.decrypt(ek)  # an EncryptedKey decrypts to its bytes
    aes = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, session)
    for ref in ek.iterfind("xenc:ReferenceList/xenc:DataReference", NS):
        target = ref.get("URI")[1:]
        ed = next((el for el in doc.iter("{%s}EncryptedData" % XENC) if el.get("Id") == target), None)
        if ed is None:
            raise ValueError("EncryptedData #%s not found" % target)
        dctx = xmlsec.EncryptionContext()
        dctx.key = aes
        dctx.decrypt(ed)  # Type Content: replaced by the plaintext in the tree
    # The signature covers the Body's plaintext: a part left encrypted fails here.
    verify_doc(doc, signer_key)


def main():
    d, seconds = sys.argv[1], float(sys.argv[2])
    gw_key = xmlsec.Key.from_file("%s/gateway-key.pem" % d, xmlsec.constants.KeyDataFormatPem)
    signer_key = xmlsec.Key.from_file("%s/rsa2048-cert.pem" % d, xmlsec.constants.KeyDataFormatCertPem)
    print("name\tbytes\tper_second")
    for size in ("2KB", "64KB", "1MB"):
        name = "enc-%s" % size
        with open("%s/env/%s.xml" % (d, name), "rb") as f:
            msg = f.read()
        r = rate(seconds, lambda: decrypt_verify(msg, gw_key, signer_key))
        print("%s\t%d\t%.1f" % (name, len(msg), r), flush=True)


if __name__ == "__main__":
    main()
