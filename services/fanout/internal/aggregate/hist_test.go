package aggregate

import (
	"math"
	"testing"
)

func TestHistogramError(t *testing.T) {
	for v := 0; v <= histMax; v++ {
		i := histIndex(v)
		if i < 0 || i >= nHist {
			t.Fatalf("index %d of %d out of range", i, v)
		}
		if i > 0 && histIndex(v-1) > i {
			t.Fatalf("not monotonic at %d", v)
		}
		got := histValue(i)
		if math.Abs(got-float64(v)) > float64(v)/32+0.5 {
			t.Fatalf("value %d reported as %v", v, got)
		}
	}
	if histIndex(histMax+1000) != nHist-1 {
		t.Fatal("overflow must land in the last bucket")
	}
}
