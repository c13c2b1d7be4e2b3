// Package interop holds wsgate's interoperability tests: SOAP messages signed
// by WS-Security stacks we did not write (zeep, xmlsec1) must verify in wssec
// and pass through a running wsgate. It has no code outside its tests; the
// signing helpers are zeep_sign.py and the *.tmpl.xml xmlsec1 templates.
//
// The tests need xmlsec1 and Debian's python3-zeep and python3-xmlsec:
//
//	apt-get install -y xmlsec1 python3-zeep python3-xmlsec
//
// Without them they skip, unless the CI environment variable is set, in which
// case a missing tool fails the test.
package interop
