package alert

import (
	"fmt"
	"math"
	"strconv"
)

// Summary says an alert in one line, with the value that explains it:
// "playback_failure_pct 9.8% (threshold 5%) on live; cdn=fastly accounts
// for 82% of it". How long it has fired is left to the reader, who knows
// the time now (the page counts it from active_at).
func (a Alert) Summary() string {
	on := "on " + a.Stream
	if a.Stream == "" {
		on = "over every stream"
	}
	s := fmt.Sprintf("%s %s (threshold %s) %s", a.Metric, a.Metric.format(a.Value), a.Metric.format(a.Threshold), on)
	if x := a.Explained; x != nil {
		s += fmt.Sprintf("; %s=%s accounts for %.0f%% of it", x.Dim, x.Value, 100*x.Share)
		if a.Metric == StartupP95 {
			s = fmt.Sprintf("%s %s (threshold %s) %s; %s=%s has %s with %.0f%% of the first frames",
				a.Metric, a.Metric.format(a.Value), a.Metric.format(a.Threshold), on, x.Dim, x.Value, a.Metric.format(x.Own), 100*x.Share)
		}
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
