package soap

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startVerifySpan opens the WS-Security verification span under the
// request's span, from the request's own tracer: without tracing (no
// recording span in ctx) it is a no-op. Only the route and the outcome
// become attributes, never the message or its tokens.
func startVerifySpan(ctx context.Context, route string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	return parent.TracerProvider().Tracer("wsgate").Start(ctx, "wssec.verify",
		trace.WithAttributes(attribute.String("wsgate.route", route)))
}

// endVerifySpan records whether verification passed and ends span.
func endVerifySpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	outcome := "verified"
	if err != nil {
		outcome = "rejected" // the cause is logged under the request ID, not traced
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attribute.String("wsgate.outcome", outcome))
	span.End()
}
