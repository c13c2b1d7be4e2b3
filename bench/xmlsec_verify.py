#!/usr/bin/python3
"""libxmlsec1 (python3-xmlsec) side of bench/run.sh: verifies the envelopes
that `wsbench gen` wrote, in-process in a loop on one core, the way zeep's
wsse.signature does (parse, register every referenced wsu:Id, verify the
ds:Signature with the signer's certificate), and prints verifications per
second as TSV. Usage: xmlsec_verify.py DIR SECONDS

libxmlsec1 is given the signer's key directly: it checks the signature and
every digest but not the certificate chain, the Timestamp or what the
signature covers, all of which wssec does too. The comparison therefore
favours libxmlsec1.
"""
import sys
import time

import xmlsec
from lxml import etree

NS = {
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
WSU_ID = "{%s}Id" % NS["wsu"]
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def verify(msg, key):
    verify_doc(etree.fromstring(msg, PARSER), key)


def verify_doc(doc, key):
    """Verifies the wsse:Security signature of the parsed envelope doc."""
    sig = doc.find(".//wsse:Security/ds:Signature", NS)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    for ref in sig.iterfind("ds:SignedInfo/ds:Reference", NS):
        target_id = ref.get("URI")[1:]
        for el in doc.iter():
            if el.get(WSU_ID) == target_id:
                ctx.register_id(el, "Id", NS["wsu"])
                break
        else:
            raise ValueError("reference #%s not found" % target_id)
    ctx.verify(sig)


def rate(seconds, fn):
    fn()  # warm up outside the timing
    start = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main():
    d, seconds = sys.argv[1], float(sys.argv[2])
    print("name\tbytes\tper_second")
    for kt in ("rsa2048", "ecp256"):
        key = xmlsec.Key.from_file("%s/%s-cert.pem" % (d, kt), xmlsec.constants.KeyDataFormatCertPem)
        for size in ("2KB", "64KB", "1MB"):
            name = "%s-%s" % (kt, size)
            with open("%s/env/%s.xml" % (d, name), "rb") as f:
                msg = f.read()
            r = rate(seconds, lambda: verify(msg, key))
            print("%s\t%d\t%.1f" % (name, len(msg), r), flush=True)


if __name__ == "__main__":
    main()
