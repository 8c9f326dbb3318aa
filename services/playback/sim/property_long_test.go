//go:build !race

package sim

import "testing"

// TestProperty checks 1,000,000 events; see propertyRun.
func TestProperty(t *testing.T) {
	propertyRun(t, 1_000_000, 3000)
}
