#!/usr/bin/python3
"""Sign a SAML-bearing SOAP template with python-xmlsec, for wsgate's interop tests.

Run with Debian's /usr/bin/python3 (python3-xmlsec). No network.

    saml_sign.py --idp-key idp.pem --idp-cert idp-cert.pem \
        --key partner.pem --cert partner-cert.pem --in template.xml --out signed.xml

The template holds two signature templates: ds:Signature Id="SIG-SAML" inside
the saml2:Assertion (enveloped, the IdP's) and ds:Signature Id="SIG-MSG" in
wsse:Security (the sender's, over wsu:Id references). The assertion is signed
first, so that a message Reference to it digests the signed assertion.
"""

import argparse

import xmlsec
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"


def key(path, cert):
    k = xmlsec.Key.from_file(path, xmlsec.KeyFormat.PEM)
    k.load_cert_from_file(cert, xmlsec.KeyFormat.PEM)
    return k


def main():
    ap = argparse.ArgumentParser()
    for a in ("--idp-key", "--idp-cert", "--key", "--cert", "--in", "--out"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()

    doc = etree.parse(args.__dict__["in"])
    root = doc.getroot()

    sig_saml = root.find(".//{%s}Signature[@Id='SIG-SAML']" % DS)
    sig_msg = root.find(".//{%s}Signature[@Id='SIG-MSG']" % DS)

    ctx = xmlsec.SignatureContext()
    for a in root.iter("{%s}Assertion" % SAML2):
        ctx.register_id(a, "ID")
    ctx.key = key(args.idp_key, args.idp_cert)
    ctx.sign(sig_saml)

    ctx = xmlsec.SignatureContext()
    for el in root.iter():
        if el.get("{%s}Id" % WSU) is not None:
            ctx.register_id(el, "Id", WSU)
    for a in root.iter("{%s}Assertion" % SAML2):
        ctx.register_id(a, "ID")
    ctx.key = key(args.key, args.cert)
    ctx.sign(sig_msg)

    doc.write(args.out, xml_declaration=True, encoding="UTF-8")


if __name__ == "__main__":
    main()
