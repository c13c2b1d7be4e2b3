// Package deploy holds no code: its tests check the deployment files in
// this folder offline, as CI can. The Prometheus rules pass promtool and
// their unit tests, every metric the rules and the Grafana dashboard query
// exists in a running gateway's /metrics, and the Kubernetes manifests
// decode strictly into the Kubernetes API types and keep their invariants.
package deploy
