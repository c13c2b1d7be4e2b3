package config

// The configuration reference in README.md is generated from the doc
// comments of config.go; a test in internal/docgen fails when it is stale.
//go:generate go run ../internal/docgen -config config.go -readme ../README.md
