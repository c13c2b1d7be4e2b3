package wssec

import "github.com/beevik/etree"

// canonicalize returns the exclusive canonical form (without comments) of el
// as it sits in its document: the namespace declarations in scope from its
// ancestors count, and the tree is neither copied nor changed. excC14N
// follows the W3C spec where goxmldsig's canonicalizer does not (attribute
// order by namespace URI, no spurious xmlns="", #default), is checked
// against goxmldsig byte for byte where both are right (excc14n_test.go),
// and is not limited to 1,000 nodes.
func canonicalize(el *etree.Element, prefixList string) ([]byte, error) {
	return excC14N(el, prefixList)
}
