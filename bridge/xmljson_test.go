package bridge

import (
	"encoding/json"
	"testing"

	"wsgate/wssec"
)

func parseEnv(t testing.TB, msg string) *wssec.Envelope {
	t.Helper()
	env, err := wssec.ParseEnvelope([]byte(msg), wssec.Limits{})
	if err != nil {
		t.Fatalf("ParseEnvelope: %v\n%s", err, msg)
	}
	return env
}

func env11(body string) string {
	return `<s:Envelope xmlns:s="` + wssec.NSSOAP11 + `"><s:Body>` + body + `</s:Body></s:Envelope>`
}

func env12(body string) string {
	return `<e:Envelope xmlns:e="` + wssec.NSSOAP12 + `"><e:Body>` + body + `</e:Body></e:Envelope>`
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBodyJSON pins the documented mapping, one rule per case.
func TestBodyJSON(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"empty Body", ``, `{}`},
		{"leaf text", `<r>x</r>`, `{"r":"x"}`},
		{"empty element", `<r/>`, `{"r":""}`},
		{"text kept exactly, never a number", `<r> 042 </r>`, `{"r":" 042 "}`},
		{"namespaces dropped", `<m:R xmlns:m="urn:m"><m:ID>1</m:ID></m:R>`, `{"R":{"ID":"1"}}`},
		{"default namespace dropped", `<R xmlns="urn:m"><ID>1</ID></R>`, `{"R":{"ID":"1"}}`},
		{"repeated elements are an array", `<r><i>1</i><i>2</i><i>3</i></r>`, `{"r":{"i":["1","2","3"]}}`},
		{"a single element is not an array", `<r><i>1</i></r>`, `{"r":{"i":"1"}}`},
		{"order of first appearance", `<r><b>1</b><a>2</a><b>3</b></r>`, `{"r":{"b":["1","3"],"a":"2"}}`},
		{"attributes", `<r id="7" m:k="v" xmlns:m="urn:m"/>`, `{"r":{"@id":"7","@k":"v"}}`},
		{"attributes and text", `<r cur="EUR">9.50</r>`, `{"r":{"@cur":"EUR","#text":"9.50"}}`},
		{"children and text", `<r>a<b>1</b>c</r>`, `{"r":{"b":"1","#text":"ac"}}`},
		{"whitespace between children dropped", "<r>\n  <b>1</b>\n</r>", `{"r":{"b":"1"}}`},
		{"CDATA is text", `<r><![CDATA[<x>]]></r>`, `{"r":"\u003cx\u003e"}`},
		{"comments and PIs dropped", `<r>a<!-- c -->b</r>`, `{"r":"ab"}`},
		{"same local name, different namespaces merge", `<r xmlns:a="urn:a" xmlns:b="urn:b"><a:x>1</a:x><b:x>2</b:x></r>`, `{"r":{"x":["1","2"]}}`},
		{"repeated objects", `<r><l n="1"/><l n="2"><d>x</d></l></r>`, `{"r":{"l":[{"@n":"1"},{"@n":"2","d":"x"}]}}`},
		{"several Body children", `<a>1</a><b>2</b>`, `{"a":"1","b":"2"}`},
		{"escaped text comes back as text", `<r>&lt;/a&gt;&lt;evil/&gt;</r>`, `{"r":"\u003c/a\u003e\u003cevil/\u003e"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := parseEnv(t, env11(tt.body))
			if got := mustJSON(t, BodyJSON(env.Body)); got != tt.want {
				t.Errorf("BodyJSON = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBodyJSONDropsBodyAttributes(t *testing.T) {
	env := parseEnv(t, `<s:Envelope xmlns:s="`+wssec.NSSOAP11+`"><s:Body xmlns:wsu="`+wssec.NSWSU+`" wsu:Id="id-1"> <r>x</r> </s:Body></s:Envelope>`)
	if got, want := mustJSON(t, BodyJSON(env.Body)), `{"r":"x"}`; got != want {
		t.Errorf("BodyJSON = %s, want %s", got, want)
	}
}

func TestFaultOf(t *testing.T) {
	tests := []struct {
		name, msg string
		want      string // JSON of the fault, "" for none
	}{
		{"1.1 fault", env11(`<s:Fault><faultcode>s:Client</faultcode><faultstring>Order not found</faultstring><detail><o:E xmlns:o="urn:o"><o:ID>42</o:ID></o:E></detail></s:Fault>`),
			`{"code":"s:Client","string":"Order not found","detail":{"E":{"ID":"42"}}}`},
		{"1.1 fault without detail", env11(`<s:Fault><faultcode> s:Server </faultcode><faultstring>boom</faultstring></s:Fault>`),
			`{"code":"s:Server","string":"boom","detail":null}`},
		{"1.1 fault with qualified children", env11(`<s:Fault><s:faultcode>s:Server</s:faultcode><s:faultstring>x</s:faultstring><s:detail>text</s:detail></s:Fault>`),
			`{"code":"s:Server","string":"x","detail":"text"}`},
		{"1.2 fault", env12(`<e:Fault><e:Code><e:Value>e:Sender</e:Value><e:Subcode><e:Value>m:BadOrder</e:Value><e:Subcode><e:Value>m:Unknown</e:Value></e:Subcode></e:Subcode></e:Code><e:Reason><e:Text xml:lang="en">Order not found</e:Text><e:Text xml:lang="de">nicht gefunden</e:Text></e:Reason><e:Detail><m:ID xmlns:m="urn:m">42</m:ID></e:Detail></e:Fault>`),
			`{"code":"e:Sender","subcode":["m:BadOrder","m:Unknown"],"string":"Order not found","detail":{"ID":"42"}}`},
		{"1.2 fault, minimal", env12(`<e:Fault><e:Code><e:Value>e:Receiver</e:Value></e:Code><e:Reason><e:Text xml:lang="en">down</e:Text></e:Reason></e:Fault>`),
			`{"code":"e:Receiver","string":"down","detail":null}`},
		{"not a fault", env11(`<r>x</r>`), ``},
		{"a Fault in another namespace is data", env11(`<Fault xmlns="urn:app"><faultcode>x</faultcode></Fault>`), ``},
		{"1.1 Fault element in a 1.2 envelope is data", env12(`<s:Fault xmlns:s="` + wssec.NSSOAP11 + `"/>`), ``},
		{"a Fault that is not first is data", env11(`<r/><s:Fault><faultcode>x</faultcode></s:Fault>`), ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := FaultOf(parseEnv(t, tt.msg))
			switch {
			case f == nil && tt.want != "":
				t.Fatalf("FaultOf = nil, want %s", tt.want)
			case f != nil && tt.want == "":
				t.Fatalf("FaultOf = %s, want nil", mustJSON(t, f.JSON()))
			case f != nil:
				if got := mustJSON(t, f.JSON()); got != tt.want {
					t.Errorf("fault = %s, want %s", got, tt.want)
				}
			}
		})
	}
}

func TestObjectGet(t *testing.T) {
	o := Object{{"a", "1"}, {"b", nil}}
	if v, ok := o.Get("a"); !ok || v != "1" {
		t.Errorf(`Get("a") = %v, %v`, v, ok)
	}
	if _, ok := o.Get("c"); ok {
		t.Error(`Get("c") found a missing key`)
	}
}
