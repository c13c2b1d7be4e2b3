package config

import (
	"testing"
)

// tracing: the endpoint is an http(s) URL without credentials, the ratio 0..1.
func TestValidateTracing(t *testing.T) {
	ratio := func(f float64) *float64 { return &f }
	tests := []struct {
		name    string
		tracing *Tracing
		want    []string
	}{
		{"absent", nil, nil},
		{"valid, default ratio", &Tracing{OTLPEndpoint: "http://otel-collector:4318"}, nil},
		{"valid bounds", &Tracing{OTLPEndpoint: "https://c.example/v1/traces", SampleRatio: ratio(0)}, nil},
		{"ratio 1", &Tracing{OTLPEndpoint: "https://c.example", SampleRatio: ratio(1)}, nil},
		{"no endpoint", &Tracing{}, []string{"tracing.otlp_endpoint: required"}},
		{"not http", &Tracing{OTLPEndpoint: "grpc://c:4317", SampleRatio: ratio(1.5)}, []string{
			"tracing.otlp_endpoint: must be an absolute http or https URL", "tracing.sample_ratio: must be between 0 and 1"}},
		{"credentials, negative", &Tracing{OTLPEndpoint: "http://u:p@c:4318", SampleRatio: ratio(-0.1)}, []string{
			"tracing.otlp_endpoint: URL must not carry credentials", "tracing.sample_ratio: must be between 0 and 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.Tracing = tt.tracing
			wantProblems(t, c, tt.want)
		})
	}
}

// tracing decodes strictly from YAML.
func TestLoadTracing(t *testing.T) {
	c, err := Load([]byte("tracing: {otlp_endpoint: \"http://127.0.0.1:4318\", sample_ratio: 0.25}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tracing == nil || c.Tracing.OTLPEndpoint != "http://127.0.0.1:4318" || c.Tracing.SampleRatio == nil || *c.Tracing.SampleRatio != 0.25 {
		t.Fatalf("tracing = %+v", c.Tracing)
	}
	if _, err := Load([]byte("tracing: {otlp_endpoint: \"http://x\", headers: {a: b}}\n")); err == nil {
		t.Error("unknown tracing key accepted")
	}
}
