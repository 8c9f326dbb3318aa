package alert

import (
	"fmt"
	"math"
	"strconv"
)

// words are how a message names each metric and the cause its
// explanation shares out: "playback failures 9.8% (threshold 5%) ...;
// cdn=fastly accounts for 82% of the failures".
var words = map[Metric]struct{ name, cause string }{
	PlaybackFailurePct: {"playback failures", "the failures"},
	StartFailurePct:    {"start failures", "the start failures"},
	ExitBeforeStartPct: {"exits before start", "the exits"},
	RebufferPct:        {"rebuffering", "the stall time"},
	StartupP95:         {"startup time p95", "the first frames"},
	ConcurrentViewers:  {"concurrent viewers", "the drop"},
}

// Summary says an alert in one line, with the value that explains it:
// "playback failures 9.8% (threshold 5%) on live; cdn=fastly accounts for
// 82% of the failures". How long it has fired is left to the reader, who
// knows the time now (the page counts it from active_at).
func (a Alert) Summary() string {
	on := "on " + a.Stream
	if a.Stream == "" {
		on = "over every stream"
	}
	w := words[a.Metric]
	s := fmt.Sprintf("%s %s (threshold %s) %s", w.name, a.Metric.format(a.Value), a.Metric.format(a.Threshold), on)
	if x := a.Explained; x != nil {
		if a.Metric == StartupP95 {
			// The explaining value is the slowest, not a share of a cause.
			return s + fmt.Sprintf("; %s=%s has %s with %.0f%% of the first frames", x.Dim, x.Value, a.Metric.format(x.Own), 100*x.Share)
		}
		s += fmt.Sprintf("; %s=%s accounts for %.0f%% of %s", x.Dim, x.Value, 100*x.Share, w.cause)
	}
	return s
}

// format writes a figure in the metric's unit.
func (m Metric) format(v float64) string {
	// One decimal at most: 9.8%, 5%, 12.3 s.
	n := strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
	switch m {
	case StartupP95:
		return n + " s"
	case ConcurrentViewers:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	default:
		return n + "%"
	}
}
