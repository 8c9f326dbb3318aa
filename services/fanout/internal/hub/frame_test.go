package hub

import (
	"math"
	"testing"
)

func TestTailHead(t *testing.T) {
	for _, tc := range []struct {
		skipped, lost int
		want          string
	}{
		{0, 0, `{"type":"tail","skipped":0,"lost":0,"events":[`},
		{12, 3, `{"type":"tail","skipped":12,"lost":3,"events":[`},
		{math.MinInt64, math.MinInt64, `{"type":"tail","skipped":-9223372036854775808,"lost":-9223372036854775808,"events":[`},
	} {
		if got := string(appendTailHead(nil, tc.skipped, tc.lost)); got != tc.want {
			t.Errorf("appendTailHead(%d, %d) = %s, want %s", tc.skipped, tc.lost, got, tc.want)
		}
	}
	// The writer keeps tailHeadRoom bytes for a header it fills in last.
	if n := len(appendTailHead(nil, math.MinInt64, math.MinInt64)); n != tailHeadRoom {
		t.Errorf("longest header %d bytes, room %d", n, tailHeadRoom)
	}
}
