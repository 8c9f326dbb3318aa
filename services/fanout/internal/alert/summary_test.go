package alert

import "testing"

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		a    Alert
		want string
	}{
		{Alert{Metric: PlaybackFailurePct, Stream: "live", Value: 9.83, Threshold: 5,
			Explained: &Explanation{Dim: DimCDN, Value: "fastly", Share: 0.82}},
			"playback failures 9.8% (threshold 5%) on live; cdn=fastly accounts for 82% of the failures"},
		{Alert{Metric: StartupP95, Stream: "", Value: 12.34, Threshold: 8,
			Explained: &Explanation{Dim: DimDevice, Value: "tv", Share: 0.3, Own: 19}},
			"startup time p95 12.3 s (threshold 8 s) over every stream; device=tv has 19 s with 30% of the first frames"},
		{Alert{Metric: ConcurrentViewers, Stream: "live", Value: 400, Threshold: 600},
			"concurrent viewers 400 (threshold 600) on live"},
	} {
		if got := tc.a.Summary(); got != tc.want {
			t.Errorf("Summary() = %q\n want %q", got, tc.want)
		}
	}
}
