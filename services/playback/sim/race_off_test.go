//go:build !race

package sim

// raceEnabled scales long tests down under the race detector.
const raceEnabled = false
