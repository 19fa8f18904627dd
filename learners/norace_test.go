//go:build !race

package learners

const raceEnabled = false
