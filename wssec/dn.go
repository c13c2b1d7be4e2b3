package wssec

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// dn is a distinguished name as a sorted list of "oid=value" pairs, so that
// names compare equal whatever RDN order or attribute spelling a stack uses
// (WCF and Java disagree on both; see WSS4J's IssuerSerial quirks).
type dn []string

var attributeOIDs = map[string]string{
	"CN": "2.5.4.3", "SN": "2.5.4.4", "SERIALNUMBER": "2.5.4.5", "C": "2.5.4.6",
	"L": "2.5.4.7", "S": "2.5.4.8", "ST": "2.5.4.8", "STREET": "2.5.4.9", "O": "2.5.4.10",
	"OU": "2.5.4.11", "T": "2.5.4.12", "TITLE": "2.5.4.12", "GIVENNAME": "2.5.4.42",
	"DC": "0.9.2342.19200300.100.1.25", "UID": "0.9.2342.19200300.100.1.1",
	"E": "1.2.840.113549.1.9.1", "EMAILADDRESS": "1.2.840.113549.1.9.1",
}

func dnPair(oid, value string) string {
	return oid + "=" + strings.ToLower(strings.Join(strings.Fields(value), " "))
}

// dnOf converts a certificate name.
func dnOf(names []pkix.AttributeTypeAndValue) dn {
	out := make(dn, 0, len(names))
	for _, n := range names {
		out = append(out, dnPair(n.Type.String(), fmt.Sprint(n.Value)))
	}
	slices.Sort(out)
	return out
}

func (a dn) equal(b dn) bool { return slices.Equal(a, b) }

// parseDN parses an RFC 4514 (or RFC 2253, or "; "-separated) string.
func parseDN(s string) (dn, error) {
	var out dn
	var attr, value strings.Builder
	inValue, quoted := false, false
	flush := func() error {
		key := strings.ToUpper(strings.TrimSpace(attr.String()))
		oid, ok := attributeOIDs[key]
		if !ok {
			if _, err := parseOID(key); err != nil {
				return fmt.Errorf("unknown attribute %.20q", key)
			}
			oid = strings.TrimPrefix(key, "OID.")
		}
		out = append(out, dnPair(oid, value.String()))
		attr.Reset()
		value.Reset()
		inValue = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			if isHex(s[i]) && i+1 < len(s) && isHex(s[i+1]) {
				b, _ := strconv.ParseUint(s[i:i+2], 16, 8)
				value.WriteByte(byte(b))
				i++
			} else {
				value.WriteByte(s[i])
			}
		case c == '"' && inValue:
			quoted = !quoted
		case quoted:
			value.WriteByte(c)
		case c == '=' && !inValue:
			inValue = true
		case (c == ',' || c == ';' || c == '+') && inValue:
			if err := flush(); err != nil {
				return nil, err
			}
		case inValue:
			value.WriteByte(c)
		default:
			attr.WriteByte(c)
		}
	}
	if !inValue {
		return nil, errors.New("not a distinguished name")
	}
	if err := flush(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	s = strings.TrimPrefix(s, "OID.")
	var oid asn1.ObjectIdentifier
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, errors.New("not an OID")
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, errors.New("not an OID")
	}
	return oid, nil
}
