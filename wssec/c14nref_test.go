package wssec

import (
	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// goxmldsigCanonicalize is the reference excC14N is compared with: goxmldsig's
// exclusive canonicalizer on a copy of el carrying the namespace declarations
// in scope from its ancestors.
func goxmldsigCanonicalize(el *etree.Element, prefixList string) ([]byte, error) {
	detached := el.Copy()
	declared := make(map[string]bool, 8)
	for _, a := range el.Attr {
		if prefix, ok := nsDeclPrefix(a); ok {
			declared[prefix] = true
		}
	}
	for p := el.Parent(); p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			prefix, ok := nsDeclPrefix(a)
			if !ok || declared[prefix] {
				continue
			}
			declared[prefix] = true
			detached.CreateAttr(a.FullKey(), a.Value)
		}
	}
	return dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixList).Canonicalize(detached)
}

// nsDeclPrefix reports whether a declares a namespace, and for which prefix
// ("" for the default namespace).
func nsDeclPrefix(a etree.Attr) (string, bool) {
	switch {
	case a.Space == "xmlns":
		return a.Key, true
	case a.Space == "" && a.Key == "xmlns":
		return "", true
	}
	return "", false
}
