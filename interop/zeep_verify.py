#!/usr/bin/python3
"""Verify a wsgate-signed SOAP envelope with zeep's WS-Security verifier.

Run with Debian's /usr/bin/python3 (python3-zeep, python3-xmlsec). No network.

    zeep_verify.py --cert signer.pem --in signed.xml

Exit 0 when the envelope verifies, 1 (with the reason on stderr) when not.

zeep's BinarySignature.verify checks the ds:Signature with the certificate it
is given and resolves every ds:Reference by wsu:Id; it neither reads the
BinarySecurityToken nor checks what is signed. So this script also checks,
before calling it, that the BinarySecurityToken carries exactly the expected
certificate, and that the Body and the Timestamp are among the references.
"""

import argparse
import base64
import sys

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from zeep.exceptions import SignatureVerificationFailed
from zeep.wsse import signature as zsig

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
WSU_ID = "{%s}Id" % WSU


def fail(msg):
    print(msg, file=sys.stderr)
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cert", required=True, help="PEM certificate of the expected signer")
    p.add_argument("--in", dest="inp", required=True)
    a = p.parse_args()

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    envelope = etree.parse(a.inp, parser).getroot()
    soap_ns = etree.QName(envelope).namespace
    header = envelope.find("{%s}Header" % soap_ns)
    body = envelope.find("{%s}Body" % soap_ns)
    if header is None or body is None:
        return fail("no Header or Body")
    security = header.find("{%s}Security" % WSSE)
    if security is None:
        return fail("no wsse:Security header")

    with open(a.cert, "rb") as f:
        cert_pem = f.read()
    want = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    bst = security.find("{%s}BinarySecurityToken" % WSSE)
    if bst is None or base64.b64decode("".join(bst.text.split())) != want:
        return fail("the BinarySecurityToken does not carry the expected certificate")

    refs = {r.get("URI") for r in security.iterfind("{%s}Signature/{%s}SignedInfo/{%s}Reference" % (DS, DS, DS))}
    timestamp = security.find("{%s}Timestamp" % WSU)
    for name, el in (("Body", body), ("Timestamp", timestamp)):
        if el is None or "#" + (el.get(WSU_ID) or "") not in refs:
            return fail("the %s is not signed" % name)

    # BinarySignature.verify (inherited from MemorySignature) uses only the
    # certificate; the constructor insists on a key file, and any readable
    # file does, so the certificate is passed for both.
    try:
        zsig.BinarySignature(a.cert, a.cert).verify(envelope)
    except SignatureVerificationFailed as e:
        return fail("zeep: signature verification failed: %r" % e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
