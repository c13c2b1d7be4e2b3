package gateway

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"wsgate/config"
	"wsgate/internal/reqscope"
	"wsgate/oauth"
	"wsgate/rest"
)

// tracerName is the instrumentation scope of wsgate's spans.
const tracerName = "wsgate"

// tracingShutdownTimeout bounds the final flush on Close: a dead collector
// must not hold up the shutdown.
const tracingShutdownTimeout = 5 * time.Second

// traceContext is W3C Trace Context only: baggage is client data wsgate
// does not pass on.
var traceContext = propagation.TraceContext{}

// newTracerProvider builds the provider for cfg.tracing, or nil without
// one. It is the gateway's own: no global provider is set.
func newTracerProvider(t *config.Tracing, version string) (*sdktrace.TracerProvider, error) {
	if t == nil {
		return nil, nil
	}
	endpoint, err := url.Parse(t.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	if endpoint.Path == "" || endpoint.Path == "/" {
		endpoint.Path = "/v1/traces"
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint.String()))
	if err != nil {
		return nil, err
	}
	ratio := 1.0
	if t.SampleRatio != nil {
		ratio = *t.SampleRatio
	}
	attrs := []attribute.KeyValue{semconv.ServiceName("wsgate")}
	if version != "" {
		attrs = append(attrs, semconv.ServiceVersion(version))
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		// Decided on the trace ID alone, not ParentBased: a client's sampled
		// flag must not make every one of its requests recorded and exported.
		sdktrace.WithSampler(sdktrace.TraceIDRatioBased(ratio)),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	), nil
}

// shutdownTracing flushes and stops tp, bounded by tracingShutdownTimeout.
func shutdownTracing(tp *sdktrace.TracerProvider) error {
	if tp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	return tp.Shutdown(ctx)
}

// traced starts the request's server span around next, continuing the
// client's traceparent. The front door names it and sets its attributes
// once the outcome is known (endServerSpan).
func traced(tracer trace.Tracer, next http.Handler) http.Handler {
	if tracer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, "wsgate "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method)))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// endServerSpan records the request's route, protocol, outcome and status
// on its server span (a no-op without tracing). Never a header or body.
func endServerSpan(ctx context.Context, route, protocol, outcome, reason string, status int) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if route != "" {
		span.SetName("wsgate " + route)
	}
	span.SetAttributes(
		attribute.String("wsgate.route", route),
		attribute.String("wsgate.protocol", protocol),
		attribute.String("wsgate.outcome", outcome),
		attribute.String("wsgate.reason", reason),
		semconv.HTTPResponseStatusCode(status),
	)
	if status >= 500 {
		span.SetStatus(codes.Error, outcome)
	}
}

// traceUpstream starts the upstream call's client span, a child of the
// request's server span, and injects its traceparent into r (the outgoing
// request, which the proxy owns). Without a recording span it does nothing.
func traceUpstream(r *http.Request) (*http.Request, trace.Span) {
	parent := trace.SpanFromContext(r.Context())
	if !parent.SpanContext().IsValid() {
		return r, nil
	}
	route, _ := reqscope.From(r.Context()).Route()
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(r.Context(), "upstream "+r.Method,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), attribute.String("wsgate.route", route)))
	r = r.WithContext(ctx)
	// Ours replaces whatever the client sent: the upstream continues our span.
	r.Header.Del("Traceparent")
	r.Header.Del("Tracestate")
	traceContext.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r, span
}

// endUpstreamSpan records the upstream's status (or failure) and ends span.
func endUpstreamSpan(span trace.Span, res *http.Response, err error) {
	if span == nil {
		return
	}
	switch {
	case err != nil:
		span.SetAttributes(attribute.String("wsgate.outcome", "error"))
		span.SetStatus(codes.Error, "upstream call failed") // not err: it may quote the URL
	default:
		span.SetAttributes(semconv.HTTPResponseStatusCode(res.StatusCode),
			attribute.String("wsgate.outcome", "answered"))
		if res.StatusCode >= 500 {
			span.SetStatus(codes.Error, "upstream 5xx")
		}
	}
	span.End()
}

// tracedValidator is a REST route's token validation with its own span
// (the token itself never becomes an attribute).
type tracedValidator struct {
	next  rest.Validator
	route string
}

func (v tracedValidator) Validate(ctx context.Context, raw string) (*oauth.Token, error) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return v.next.Validate(ctx, raw)
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(ctx, "oauth.validate",
		trace.WithAttributes(attribute.String("wsgate.route", v.route)))
	tok, err := v.next.Validate(ctx, raw)
	outcome := "valid"
	if err != nil {
		outcome = "rejected" // the error is logged under the request ID, not traced
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attribute.String("wsgate.outcome", outcome))
	span.End()
	return tok, err
}
