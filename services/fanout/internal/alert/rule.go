// Package alert evaluates QoE alert rules over the fan-out's live windows:
// a threshold, or a drop against the same figure some time earlier, with a
// minimum sample so that a handful of sessions pages nobody, a duration the
// condition must hold before an alert fires and another before it
// resolves (so it does not flap), a severity, and the value of a dimension
// (CDN, device, country) that explains most of it.
//
// The rules mirror the chart's PrometheusRule (charts/playpulse, values
// "alerts"): the same figures, the same guards, so that an alert fires in
// Playpulse and in Prometheus for the same cause. docs/alerts.md lists them.
package alert

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Metric is the figure a rule watches.
type Metric string

// The metrics, with the figure of docs/metrics.md each reads and the
// sample its minimum counts.
const (
	PlaybackFailurePct Metric = "playback_failure_pct"  // of views that ended (failures + ended or quit); sample: those views
	StartFailurePct    Metric = "start_failure_pct"     // of start outcomes; sample: start outcomes
	ExitBeforeStartPct Metric = "exit_before_start_pct" // of start outcomes; sample: start outcomes
	RebufferPct        Metric = "rebuffer_pct"          // stall time of stall + play time; sample: watched seconds
	StartupP95         Metric = "startup_p95_s"         // seconds to first frame, 95th percentile; sample: first frames
	ConcurrentViewers  Metric = "concurrent_viewers"    // at the window's end; sample: viewers at the baseline
)

// Dim is a dimension that can explain an alert.
type Dim string

// The dimensions, as the snapshot's by_* objects name them.
const (
	DimCDN     Dim = "cdn"
	DimDevice  Dim = "device"
	DimCountry Dim = "country"
)

// Rule is one alert rule. A rule is evaluated for every stream (Stream
// "*"), one stream, or all of them together (Stream "").
type Rule struct {
	Name   string // shown on the page and in notifications
	Metric Metric
	Stream string
	// Above: the alert condition is the figure above Threshold (false:
	// below it).
	Above     bool
	Threshold float64
	// Baseline, if set, makes Threshold relative: the condition compares
	// the figure with Threshold × the same figure Baseline earlier (for
	// concurrent viewers dropping by half: Above false, Threshold 0.5,
	// Baseline 10m).
	Baseline time.Duration
	// Window is the span the figure is computed over; default 1m (the
	// dashboard's KPI window). Ignored by ConcurrentViewers, a gauge.
	Window time.Duration
	// MinSample is the least sample (see the metrics) for the rule to be
	// evaluated at all; below it the condition is false.
	MinSample float64
	// For: how long the condition must hold before the alert fires;
	// default 0 (at once). ResolveAfter: how long it must be false before
	// a firing alert resolves; default 1m.
	For, ResolveAfter time.Duration
	Severity          string // default "warning"
	// Explain: the dimensions searched for the value that accounts for
	// most of it; default every one.
	Explain []Dim
}

// withDefaults returns the rule with its defaults filled in.
func (r Rule) withDefaults() Rule {
	if r.Window == 0 {
		r.Window = time.Minute
	}
	if r.ResolveAfter == 0 {
		r.ResolveAfter = time.Minute
	}
	if r.Severity == "" {
		r.Severity = "warning"
	}
	if r.Explain == nil {
		r.Explain = []Dim{DimCDN, DimDevice, DimCountry}
	}
	return r
}

// Validate says what is wrong with a rule, naming the field.
func (r Rule) Validate() error {
	var errs []error
	if r.Name == "" {
		errs = append(errs, errors.New("name: empty"))
	}
	switch r.Metric {
	case PlaybackFailurePct, StartFailurePct, ExitBeforeStartPct, RebufferPct, StartupP95, ConcurrentViewers:
	default:
		errs = append(errs, fmt.Errorf("metric: %q is none of playback_failure_pct, start_failure_pct, exit_before_start_pct, rebuffer_pct, startup_p95_s, concurrent_viewers", r.Metric))
	}
	if r.Threshold < 0 {
		errs = append(errs, fmt.Errorf("threshold: %v is negative", r.Threshold))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"baseline", r.Baseline}, {"window", r.Window}, {"for", r.For}, {"resolveAfter", r.ResolveAfter}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative", d.name, d.v))
		}
	}
	if r.Baseline > 0 && r.Baseline < r.Window {
		errs = append(errs, fmt.Errorf("baseline: %v is shorter than the window %v (the two would overlap)", r.Baseline, r.Window))
	}
	if r.MinSample < 0 {
		errs = append(errs, fmt.Errorf("minSample: %v is negative", r.MinSample))
	}
	for _, d := range r.Explain {
		if d != DimCDN && d != DimDevice && d != DimCountry {
			errs = append(errs, fmt.Errorf("explain: %q is none of cdn, device, country", d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rule %q: %w", r.Name, err)
	}
	return nil
}

// equal says whether two rules are the same rule (the alerts of a rule
// that did not change carry on when the rules are reloaded).
func (r Rule) equal(o Rule) bool {
	return r.Name == o.Name && r.Metric == o.Metric && r.Stream == o.Stream && r.Above == o.Above &&
		r.Threshold == o.Threshold && r.Baseline == o.Baseline && r.Window == o.Window && r.MinSample == o.MinSample &&
		r.For == o.For && r.ResolveAfter == o.ResolveAfter && r.Severity == o.Severity && slices.Equal(r.Explain, o.Explain)
}
