package xsd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// BenchmarkBody5KB: a ~5 KB Body parsed, and parsed then validated (the
// validation cost ratio of soap.validate_body).
func BenchmarkBody5KB(b *testing.B) {
	text, err := os.ReadFile(filepath.Join("testdata", "orders.xsd"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := loadSchema(b, strings.Replace(string(text), `maxOccurs="3"`, `maxOccurs="unbounded"`, 1))
	if err != nil {
		b.Fatal(err)
	}
	var body strings.Builder
	body.WriteString(`<PlaceOrder xmlns="urn:t"><Date>2026-02-28</Date><CustomerID>ABC</CustomerID>`)
	for i := 1; body.Len() < 5000; i++ {
		fmt.Fprintf(&body, `<Line no="%d"><Sku>ABC-%04d</Sku><Qty>%d</Qty><Note>line %d</Note></Line>`, i, i, i%999+1, i)
	}
	body.WriteString(`<Total>10.50</Total><Currency>EUR</Currency></PlaceOrder>`)
	doc := []byte(body.String())
	for _, validate := range []bool{false, true} {
		b.Run(map[bool]string{false: "parsed", true: "validated"}[validate], func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				d := etree.NewDocument()
				if err := d.ReadFromBytes(doc); err != nil {
					b.Fatal(err)
				}
				if validate {
					if err := s.Validate(d.Root()); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
