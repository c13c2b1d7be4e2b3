package config

// The configuration reference in docs/configuration.md is generated from the doc
// comments of config.go; a test in internal/docgen fails when it is stale.
//go:generate go run ../internal/docgen -config config.go -doc ../docs/configuration.md
