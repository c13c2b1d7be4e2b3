package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"wsgate/config"
	"wsgate/contract/openapi"
	"wsgate/rest"
)

// withOpenAPI puts the route's openapi contract (relative to the config
// file's directory, like request_template) in front of next: the reverse
// proxy of a REST route or the bridge of a bridge route. It runs behind the
// oauth edge, so an unauthenticated client learns nothing of the contract
// and no body is read before authentication; on a bridge route the JSON is
// checked before any SOAP is built. The document is loaded once per route
// load; a missing or invalid one fails the route's build.
func withOpenAPI(env *routeEnv, r *config.Route, next http.Handler, onError errorWriter) (http.Handler, error) {
	if r.OpenAPI == "" {
		return next, nil
	}
	p := r.OpenAPI
	if !filepath.IsAbs(p) {
		p = filepath.Join(env.baseDir, p)
	}
	c, err := openapi.Load(p)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return openapi.New(next, openapi.Options{
		Contract:          c,
		PathPrefix:        r.PathPrefix,
		MaxBodyBytes:      env.cfg.Limits.MaxBodyBytes,
		ValidateResponses: r.OpenAPIResponses,
		OnError:           onError,
		Describe:          rest.Describe,
		Logger:            env.logger.With(slog.String("route", r.Name)),
	})
}
