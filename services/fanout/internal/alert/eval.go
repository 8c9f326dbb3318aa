package alert

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Figures are the counts of one scope over a window (docs/metrics.md).
type Figures struct {
	Plays, StartFailures, ExitsBeforeStart float64 // start outcomes
	PlaybackFailures, ViewsEnded           float64 // view outcomes
	PlayS, StallS                          float64 // watched seconds
	StartupP95S                            float64 // NaN without a first frame
	Viewers                                float64 // concurrent viewers at the window's end
}

// value returns the rule's figure and the sample its minimum counts. A
// figure without a sample is NaN.
func (f Figures) value(m Metric) (v, sample float64) {
	pct := func(n, d float64) float64 {
		if d == 0 {
			return math.NaN()
		}
		return 100 * n / d
	}
	starts := f.Plays + f.StartFailures + f.ExitsBeforeStart
	switch m {
	case PlaybackFailurePct:
		views := f.PlaybackFailures + f.ViewsEnded
		return pct(f.PlaybackFailures, views), views
	case StartFailurePct:
		return pct(f.StartFailures, starts), starts
	case ExitBeforeStartPct:
		return pct(f.ExitsBeforeStart, starts), starts
	case RebufferPct:
		watched := f.PlayS + f.StallS
		return pct(f.StallS, watched), watched
	case StartupP95:
		return f.StartupP95S, f.Plays
	case ConcurrentViewers:
		return f.Viewers, f.Viewers
	}
	return math.NaN(), 0
}

// part is the share of the figure's cause a scope holds: the failures, the
// stall time, the exits; nil for the metrics without one.
func (f Figures) part(m Metric) float64 {
	switch m {
	case PlaybackFailurePct:
		return f.PlaybackFailures
	case StartFailurePct:
		return f.StartFailures
	case ExitBeforeStartPct:
		return f.ExitsBeforeStart
	case RebufferPct:
		return f.StallS
	}
	return math.NaN()
}

// Source gives the figures the rules read. The fan-out's aggregator is the
// one in service; tests give their own.
type Source interface {
	// Streams lists the streams with figures now.
	Streams() []string
	// Figures returns the figures of one stream ("" for all) over
	// [from, to); false when the source has none for it.
	Figures(stream string, from, to time.Time) (Figures, bool)
	// Breakdown returns them by each value of dim.
	Breakdown(stream string, dim Dim, from, to time.Time) map[string]Figures
}

// State is where an alert is.
type State string

const (
	// Pending: the condition holds, not yet for the rule's For.
	Pending State = "pending"
	// Firing: it held for For; it stays firing until the condition has
	// been false for the rule's ResolveAfter.
	Firing State = "firing"
	// Resolved is only seen in a Change: the alert ended.
	Resolved State = "resolved"
)

// Explanation is the value of a dimension that accounts for most of an
// alert: "cdn=fastly accounts for 82% of the failures".
type Explanation struct {
	Dim   Dim     `json:"dim"`
	Value string  `json:"value"`
	Share float64 `json:"share"`  // of the cause (failures, stall time, exits, the drop) or, for startup time, of the first frames
	Own   float64 `json:"figure"` // the rule's figure for that value alone
}

// Alert is a rule's state for one stream.
type Alert struct {
	Rule       string       `json:"rule"`
	Metric     Metric       `json:"metric"`
	Stream     string       `json:"stream"`
	Severity   string       `json:"severity"`
	State      State        `json:"state"`
	Since      time.Time    `json:"since"`     // the condition began to hold
	ActiveAt   time.Time    `json:"active_at"` // it fired (zero while pending)
	ResolvedAt time.Time    `json:"resolved_at,omitzero"`
	Value      float64      `json:"value"`     // the figure at the last evaluation that held
	Threshold  float64      `json:"threshold"` // absolute: × the baseline for a relative rule
	Explained  *Explanation `json:"explained,omitempty"`
	// Message says it in one line (Summary): what the page, the
	// controller's status and the notifications show.
	Message string `json:"message"`
}

// Change is an alert that fired or resolved at an evaluation: what a
// notifier sends.
type Change struct {
	Alert
	From State `json:"from"`
}

type key struct {
	rule   string // its name
	stream string
}

type state struct {
	Alert
	falseSince time.Time
}

// Evaluator evaluates rules over a Source. It is not safe for concurrent
// use: the fan-out calls Evaluate from one goroutine and publishes its
// result.
type Evaluator struct {
	rules  []Rule
	byName map[string]int
	src    Source
	states map[key]*state // at most len(rules) × streams, removed when resolved
	ended  []Change       // firing alerts of rules removed or changed, told at the next Evaluate
}

// NewEvaluator returns an Evaluator of valid rules (Rule.Validate) with
// unique names.
func NewEvaluator(src Source, rules []Rule) *Evaluator {
	e := &Evaluator{src: src, states: map[key]*state{}}
	e.SetRules(rules, time.Time{})
	return e
}

// SetRules replaces the rules (a rules file that changed). The alerts of a
// rule that is unchanged carry on; those of a rule removed or changed end,
// the firing ones told as resolved at the next Evaluate.
func (e *Evaluator) SetRules(rules []Rule, now time.Time) {
	old := e.rules
	e.rules, e.byName = nil, map[string]int{}
	for i, r := range rules {
		e.rules = append(e.rules, r.withDefaults())
		e.byName[r.Name] = i
	}
	for k, st := range e.states {
		i, ok := e.byName[k.rule]
		if ok && slices.ContainsFunc(old, func(o Rule) bool { return o.Name == k.rule && o.equal(e.rules[i]) }) {
			continue
		}
		delete(e.states, k)
		if st.State == Firing {
			done := st.Alert
			done.State, done.ResolvedAt = Resolved, now
			e.ended = append(e.ended, Change{Alert: done, From: Firing})
		}
	}
}

// Evaluate evaluates every rule as of now and returns the pending and
// firing alerts (by severity, rule, stream) and what fired or resolved.
func (e *Evaluator) Evaluate(now time.Time) (active []Alert, changes []Change) {
	changes, e.ended = e.ended, nil
	seen := map[key]bool{}
	var streams []string
	for _, r := range e.rules {
		targets := []string{r.Stream}
		if r.Stream == "*" {
			if streams == nil {
				streams = e.src.Streams()
			}
			targets = streams
		}
		for _, s := range targets {
			k := key{r.Name, s}
			seen[k] = true
			if c, ok := e.step(k, now); ok {
				changes = append(changes, c)
			}
		}
	}
	// A stream gone from the source: its alerts see a false condition
	// until they resolve.
	for k := range e.states {
		if !seen[k] {
			if c, ok := e.transition(k, e.rules[e.byName[k.rule]], now, false, Alert{}); ok {
				changes = append(changes, c)
			}
		}
	}
	for _, st := range e.states {
		st.Message = st.Summary()
		active = append(active, st.Alert)
	}
	for i := range changes {
		changes[i].Message = changes[i].Summary()
	}
	slices.SortFunc(active, func(a, b Alert) int {
		if c := strings.Compare(severityRank(a.Severity), severityRank(b.Severity)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return strings.Compare(a.Stream, b.Stream)
	})
	return active, changes
}

// severityRank orders critical before warning before anything else.
func severityRank(s string) string {
	switch s {
	case "critical":
		return "0"
	case "warning":
		return "1"
	}
	return "2" + s
}

// step evaluates one rule for one stream.
func (e *Evaluator) step(k key, now time.Time) (Change, bool) {
	r := e.rules[e.byName[k.rule]]
	from := now.Add(-r.Window)
	f, ok := e.src.Figures(k.stream, from, now)
	v, sample := f.value(r.Metric)
	thr := r.Threshold
	if ok && r.Baseline > 0 {
		var b Figures
		b, ok = e.src.Figures(k.stream, from.Add(-r.Baseline), now.Add(-r.Baseline))
		bv, bs := b.value(r.Metric)
		thr *= bv
		if r.Metric == ConcurrentViewers {
			sample = bs // a drop is judged on the audience there was
		}
	}
	cond := ok && sample >= r.MinSample && !math.IsNaN(v) && !math.IsNaN(thr) &&
		(r.Above && v > thr || !r.Above && v < thr)
	a := Alert{Rule: r.Name, Metric: r.Metric, Stream: k.stream, Severity: r.Severity, Value: v, Threshold: thr}
	return e.transition(k, r, now, cond, a)
}

// transition moves an alert's state on: the rule's For before it fires,
// its ResolveAfter before it resolves.
func (e *Evaluator) transition(k key, r Rule, now time.Time, cond bool, a Alert) (Change, bool) {
	st := e.states[k]
	switch {
	case cond && st == nil:
		a.State, a.Since = Pending, now
		st = &state{Alert: a}
		e.states[k] = st
	case cond:
		st.Value, st.Threshold = a.Value, a.Threshold
		st.falseSince = time.Time{}
	case st == nil:
		return Change{}, false
	case st.State == Pending:
		delete(e.states, k)
		return Change{}, false
	default: // firing, condition false
		if st.falseSince.IsZero() {
			st.falseSince = now
		}
		if now.Sub(st.falseSince) < r.ResolveAfter {
			return Change{}, false
		}
		delete(e.states, k)
		done := st.Alert
		done.State, done.ResolvedAt = Resolved, now
		return Change{Alert: done, From: Firing}, true
	}
	if st.State == Pending && now.Sub(st.Since) >= r.For {
		st.State, st.ActiveAt = Firing, now
		st.Explained = e.explain(k.stream, r, now, st.Threshold)
		return Change{Alert: st.Alert, From: Pending}, true
	}
	if st.State == Firing {
		st.Explained = e.explain(k.stream, r, now, st.Threshold)
	}
	return Change{}, false
}

// explain finds the value of a dimension that accounts for most of the
// alert: the most of its cause (failures, stall time, exits) beyond what
// the value's share of the sample would give at the rest's rate or,
// for startup time, the highest p95 over the threshold among the values
// with at least a tenth of the first frames, or, for a viewers drop, the
// largest share of the drop. Nil when no value stands out (a share under a
// third, no value over the threshold, or no data).
func (e *Evaluator) explain(stream string, r Rule, now time.Time, thr float64) *Explanation {
	from := now.Add(-r.Window)
	total, _ := e.src.Figures(stream, from, now)
	var base Figures
	if r.Metric == ConcurrentViewers && r.Baseline > 0 {
		base, _ = e.src.Figures(stream, from.Add(-r.Baseline), now.Add(-r.Baseline))
	}
	var best *Explanation
	better := func(x Explanation, score float64, bestScore *float64) {
		if best == nil || score > *bestScore {
			c := x
			best, *bestScore = &c, score
		}
	}
	bestScore := math.Inf(-1)
	for _, d := range r.Explain {
		by := e.src.Breakdown(stream, d, from, now)
		var before map[string]Figures
		if r.Metric == ConcurrentViewers && r.Baseline > 0 {
			before = e.src.Breakdown(stream, d, from.Add(-r.Baseline), now.Add(-r.Baseline))
		}
		for _, name := range slices.Sorted(mapsKeys(by, before)) {
			f := by[name]
			own, _ := f.value(r.Metric)
			x := Explanation{Dim: d, Value: name, Own: own}
			switch r.Metric {
			case StartupP95:
				if total.Plays == 0 || f.Plays < total.Plays/10 || math.IsNaN(own) || own <= thr {
					continue
				}
				x.Share = f.Plays / total.Plays
				better(x, own, &bestScore)
			case ConcurrentViewers:
				drop, all := before[name].Viewers-f.Viewers, base.Viewers-total.Viewers
				if all <= 0 || drop <= 0 {
					continue
				}
				x.Share = drop / all
				better(x, x.Share, &bestScore)
			default:
				all := total.part(r.Metric)
				if all <= 0 {
					continue
				}
				// Scored by the cause beyond what the value's own sample
				// would give at the rate of the rest: a value that is most
				// of the audience (TVs watch longest) is most of any cause,
				// and explains nothing by it.
				c := f.part(r.Metric)
				_, d := f.value(r.Metric)
				_, allD := total.value(r.Metric)
				rest := 0.0
				if allD > d {
					rest = (all - c) / (allD - d)
				}
				excess := c - d*rest
				if excess <= 0 {
					continue
				}
				x.Share = c / all
				better(x, excess, &bestScore)
			}
		}
	}
	if best == nil || r.Metric != StartupP95 && best.Share < 1.0/3 {
		return nil
	}
	return best
}

// mapsKeys returns the keys of both maps, once each.
func mapsKeys(a, b map[string]Figures) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
		for k := range b {
			if _, dup := a[k]; dup {
				continue
			}
			if !yield(k) {
				return
			}
		}
	}
}
