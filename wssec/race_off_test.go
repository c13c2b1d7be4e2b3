//go:build !race

package wssec

// raceEnabled: the race detector's shadow memory inflates RSS, so peak RSS
// is only asserted without it.
const raceEnabled = false
