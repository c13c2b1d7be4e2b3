// Package loadtest holds the robustness test of issue 7: a bounded loop of
// mixed hostile and valid requests against a real `wsgate serve` process on
// loopback (see loadtest_test.go). It has no code of its own.
package loadtest
