#!/usr/bin/python3
"""Sign a SOAP envelope with zeep's WS-Security signing, for wsgate's interop tests.

Run with Debian's /usr/bin/python3 (python3-zeep, python3-xmlsec). No network.

    zeep_sign.py --mode binary|issuerserial --alg sha1|sha256 \
        --key key.pem --cert cert.pem --in envelope.xml --out signed.xml \
        [--ttl 300]

binary:       zeep.wsse.signature.BinarySignature (BinarySecurityToken + Reference)
issuerserial: zeep.wsse.signature.Signature (X509Data with X509IssuerSerial in KeyInfo)

zeep signs the Body, and the wsu:Timestamp when the Security header has one,
but never adds a Timestamp itself: this script adds one (Created = now,
Expires = now + ttl) before signing, so both are covered.
"""

import argparse
import datetime
import sys

import xmlsec
from lxml import etree
from zeep.wsse import signature as zsig
from zeep.wsse import utils as zutils

ALGS = {
    "sha1": (xmlsec.Transform.RSA_SHA1, xmlsec.Transform.SHA1),
    "sha256": (xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA256),
}


def add_timestamp(envelope, ttl):
    """Add wsu:Timestamp to the Security header (created if absent)."""
    security = zutils.get_security_header(envelope)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    ts = zutils.WSU.Timestamp(
        zutils.WSU.Created(zutils.get_timestamp(now, zulu_timestamp=True)),
        zutils.WSU.Expires(
            zutils.get_timestamp(now + datetime.timedelta(seconds=ttl), zulu_timestamp=True)
        ),
    )
    security.append(ts)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mode", choices=["binary", "issuerserial"], required=True)
    p.add_argument("--alg", choices=sorted(ALGS), required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ttl", type=int, default=300)
    a = p.parse_args()

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    envelope = etree.parse(a.inp, parser).getroot()
    add_timestamp(envelope, a.ttl)

    sig_method, digest_method = ALGS[a.alg]
    cls = zsig.BinarySignature if a.mode == "binary" else zsig.Signature
    signer = cls(a.key, a.cert, signature_method=sig_method, digest_method=digest_method)
    envelope, _ = signer.apply(envelope, {})

    # Self-check with zeep's own verifier so a broken signer is reported here,
    # not blamed on wsgate.
    signer.verify(envelope)

    with open(a.out, "wb") as f:
        f.write(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
