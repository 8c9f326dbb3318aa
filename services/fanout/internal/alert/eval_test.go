package alert

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// script is a Source whose figures are functions of the window's end, so
// a test plays a timeline on an injected clock.
type script struct {
	streams []string
	at      func(stream string, end time.Time) (Figures, bool)
	by      func(stream string, dim Dim, end time.Time) map[string]Figures
}

func (s *script) Streams() []string { return s.streams }
func (s *script) Figures(stream string, _, to time.Time) (Figures, bool) {
	return s.at(stream, to)
}
func (s *script) Breakdown(stream string, dim Dim, _, to time.Time) map[string]Figures {
	if s.by == nil {
		return nil
	}
	return s.by(stream, dim, to)
}

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// failures returns figures with pct % playback failures out of views.
func failures(pct, views float64) Figures {
	return Figures{PlaybackFailures: views * pct / 100, ViewsEnded: views * (1 - pct/100), StartupP95S: math.NaN()}
}

// during is a timeline: figures f between from and to seconds after t0,
// healthy (1% failures of 1000 views) otherwise.
func during(from, to int, f Figures) func(string, time.Time) (Figures, bool) {
	return func(_ string, end time.Time) (Figures, bool) {
		s := end.Sub(t0).Seconds()
		if s >= float64(from) && s < float64(to) {
			return f, true
		}
		return failures(1, 1000), true
	}
}

// run evaluates every 5 s from t0 to t0+secs and returns the changes as
// "<second> <from>→<state> <stream>" and the active alerts at each step.
func run(e *Evaluator, secs int) (changes []string, active map[int][]Alert) {
	active = map[int][]Alert{}
	for s := 0; s <= secs; s += 5 {
		a, cs := e.Evaluate(t0.Add(time.Duration(s) * time.Second))
		active[s] = a
		for _, c := range cs {
			changes = append(changes, strings.TrimSpace(fmt.Sprintf("%v %s→%s %s", time.Duration(s)*time.Second, c.From, c.State, c.Stream)))
		}
	}
	return changes, active
}

func TestTimeline(t *testing.T) {
	failRule := Rule{Name: "failures", Metric: PlaybackFailurePct, Above: true, Threshold: 5, MinSample: 100, For: 30 * time.Second, ResolveAfter: time.Minute}
	for _, c := range []struct {
		name string
		rule Rule
		at   func(string, time.Time) (Figures, bool)
		want []string
	}{
		{"fires after its for, resolves a minute after the cause ends", failRule,
			during(60, 180, failures(10, 1000)),
			[]string{"1m30s pending→firing", "4m0s firing→resolved"}},
		{"a cause shorter than for never fires", failRule,
			during(60, 85, failures(10, 1000)), nil},
		{"too few views pages nobody", failRule,
			during(60, 180, failures(50, 40)), nil},
		{"a cause that comes and goes every 20 s fires once and stays firing",
			failRule,
			func(s string, end time.Time) (Figures, bool) {
				sec := int(end.Sub(t0).Seconds())
				if sec >= 60 && sec < 240 && (sec/20)%2 == 0 || sec >= 60 && sec < 100 {
					return failures(10, 1000), true
				}
				return failures(1, 1000), true
			},
			// true for the last time in 3m20s-3m40s: resolved a minute later
			[]string{"1m30s pending→firing", "4m40s firing→resolved"}},
		{"no data resolves like a healthy stream", failRule,
			func(s string, end time.Time) (Figures, bool) {
				if end.Sub(t0) >= 60*time.Second && end.Sub(t0) < 180*time.Second {
					return failures(10, 1000), true
				}
				if end.Sub(t0) >= 180*time.Second {
					return Figures{}, false
				}
				return failures(1, 1000), true
			},
			[]string{"1m30s pending→firing", "4m0s firing→resolved"}},
		{"viewers halved against ten minutes before",
			Rule{Name: "drop", Metric: ConcurrentViewers, Threshold: 0.5, Baseline: 10 * time.Minute, MinSample: 500, For: 10 * time.Second},
			func(s string, end time.Time) (Figures, bool) {
				if end.Sub(t0) >= 15*time.Minute && end.Sub(t0) < 16*time.Minute {
					return Figures{Viewers: 400}, true
				}
				return Figures{Viewers: 1000}, true
			},
			// At 25 min the baseline (15 min) is the low one: 1000 is not
			// under half of 400, nothing fires.
			[]string{"15m10s pending→firing", "17m0s firing→resolved"}},
		{"a small audience halving pages nobody",
			Rule{Name: "drop", Metric: ConcurrentViewers, Threshold: 0.5, Baseline: 10 * time.Minute, MinSample: 500, For: 10 * time.Second},
			func(s string, end time.Time) (Figures, bool) {
				if end.Sub(t0) >= 15*time.Minute && end.Sub(t0) < 16*time.Minute {
					return Figures{Viewers: 40}, true
				}
				return Figures{Viewers: 100}, true
			}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.rule.Validate(); err != nil {
				t.Fatal(err)
			}
			e := NewEvaluator(&script{at: c.at}, []Rule{c.rule})
			got, _ := run(e, 30*60)
			if strings.Join(got, "; ") != strings.Join(c.want, "; ") {
				t.Fatalf("changes\n got %q\nwant %q", got, c.want)
			}
			if len(e.states) != 0 {
				t.Fatalf("%d states left after the timeline", len(e.states))
			}
		})
	}
}

// TestEveryStream: a rule for "*" is one alert per stream; a stream that
// leaves the source resolves after ResolveAfter and is forgotten.
func TestEveryStream(t *testing.T) {
	src := &script{streams: []string{"a", "b"}, at: func(s string, end time.Time) (Figures, bool) {
		if s == "b" {
			return failures(20, 1000), true
		}
		return failures(1, 1000), true
	}}
	e := NewEvaluator(src, []Rule{{Name: "failures", Metric: PlaybackFailurePct, Stream: "*", Above: true, Threshold: 5}})
	active, changes := e.Evaluate(t0)
	if len(active) != 1 || active[0].Stream != "b" || active[0].State != Firing || len(changes) != 1 || changes[0].Threshold != 5 || math.Abs(active[0].Value-20) > 1e-9 {
		t.Fatalf("active %+v, changes %+v", active, changes)
	}
	src.streams = []string{"a"}
	if active, changes = e.Evaluate(t0.Add(59 * time.Second)); len(active) != 1 || len(changes) != 0 {
		t.Fatalf("b gone for 59 s: active %+v, changes %+v", active, changes)
	}
	if active, changes = e.Evaluate(t0.Add(2 * time.Minute)); len(active) != 0 || len(changes) != 1 || changes[0].State != Resolved || changes[0].Stream != "b" {
		t.Fatalf("b gone for 2 min: active %+v, changes %+v", active, changes)
	}
}

// TestExplain: the dimension value that accounts for most of an alert.
func TestExplain(t *testing.T) {
	fastly := func(dim Dim, healthy, sick Figures) map[string]Figures {
		if dim != DimCDN {
			// Devices share the failures evenly: none explains them.
			return map[string]Figures{"tv": failures(5, 500), "mobile": failures(5, 500)}
		}
		return map[string]Figures{"akamai": healthy, "fastly": sick}
	}
	for _, c := range []struct {
		name  string
		rule  Rule
		total Figures
		by    func(Dim) map[string]Figures
		want  string // "dim=value share own", "" for none
	}{
		{"failures on one CDN",
			Rule{Name: "f", Metric: PlaybackFailurePct, Above: true, Threshold: 2},
			failures(5, 1000),
			func(d Dim) map[string]Figures { return fastly(d, failures(1, 500), failures(9, 500)) },
			"cdn=fastly 90% 9.0"},
		{"failures everywhere",
			Rule{Name: "f", Metric: PlaybackFailurePct, Above: true, Threshold: 2},
			failures(5, 1000),
			func(Dim) map[string]Figures {
				m := map[string]Figures{}
				for _, v := range []string{"a", "b", "c", "d"} {
					m[v] = failures(5, 250)
				}
				return m
			},
			""},
		// TVs have most of the views, so most of the failures (52%), at a
		// rate below the stream's; mobiles fail at 25%.
		{"not the biggest audience but the worst rate",
			Rule{Name: "f", Metric: PlaybackFailurePct, Above: true, Threshold: 2},
			failures(5.2, 1000),
			func(d Dim) map[string]Figures {
				if d != DimDevice {
					return map[string]Figures{"a": failures(5.2, 500), "b": failures(5.2, 500)}
				}
				return map[string]Figures{"tv": failures(3, 900), "mobile": failures(25, 100)}
			},
			"device=mobile 48% 25.0"},
		{"startup on one CDN",
			Rule{Name: "s", Metric: StartupP95, Above: true, Threshold: 10},
			Figures{Plays: 1000, StartupP95S: 15},
			func(d Dim) map[string]Figures {
				return map[string]Figures{"akamai": {Plays: 600, StartupP95S: 6}, "fastly": {Plays: 380, StartupP95S: 22}, "tiny": {Plays: 20, StartupP95S: 40}}
			},
			"cdn=fastly 38% 22.0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := &script{
				at: func(string, time.Time) (Figures, bool) { return c.total, true },
				by: func(_ string, d Dim, _ time.Time) map[string]Figures { return c.by(d) },
			}
			active, _ := NewEvaluator(src, []Rule{c.rule}).Evaluate(t0)
			if len(active) != 1 {
				t.Fatalf("active %+v", active)
			}
			got := ""
			if x := active[0].Explained; x != nil {
				got = fmt.Sprintf("%s=%s %.0f%% %.1f", x.Dim, x.Value, 100*x.Share, x.Own)
			}
			if got != c.want {
				t.Fatalf("explained %q, want %q", got, c.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		rule Rule
		says string
	}{
		{Rule{Metric: RebufferPct}, "name: empty"},
		{Rule{Name: "x", Metric: "p99"}, `metric: "p99" is none of`},
		{Rule{Name: "x", Metric: RebufferPct, For: -time.Second}, "for: -1s is negative"},
		{Rule{Name: "x", Metric: ConcurrentViewers, Baseline: 30 * time.Second, Window: time.Minute}, "baseline: 30s is shorter than the window"},
		{Rule{Name: "x", Metric: RebufferPct, Explain: []Dim{"region"}}, `explain: "region" is none of`},
	} {
		err := c.rule.Validate()
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %q", c.rule, err, c.says)
		}
	}
	if err := (Rule{Name: "ok", Metric: StartupP95, Above: true, Threshold: 10}).Validate(); err != nil {
		t.Errorf("valid rule: %v", err)
	}
}

// TestSetRules: reloading the rules keeps the alerts of an unchanged rule
// and ends, as resolved, those of a rule removed or changed.
func TestSetRules(t *testing.T) {
	src := &script{at: func(string, time.Time) (Figures, bool) { return failures(10, 1000), true }}
	a := Rule{Name: "a", Metric: PlaybackFailurePct, Above: true, Threshold: 5}
	b := Rule{Name: "b", Metric: PlaybackFailurePct, Above: true, Threshold: 5, For: time.Hour}
	e := NewEvaluator(src, []Rule{a, b})
	if active, changes := e.Evaluate(t0); len(active) != 2 || len(changes) != 1 || changes[0].Rule != "a" {
		t.Fatalf("active %+v, changes %+v", active, changes)
	}
	e.SetRules([]Rule{a, b, {Name: "c", Metric: RebufferPct, Above: true, Threshold: 1}}, t0.Add(time.Second))
	if active, changes := e.Evaluate(t0.Add(5 * time.Second)); len(active) != 2 || len(changes) != 0 || !active[0].Since.Equal(t0) {
		t.Fatalf("unchanged rules reloaded: active %+v, changes %+v", active, changes)
	}
	a2 := a
	a2.Threshold = 50
	e.SetRules([]Rule{a2}, t0.Add(10*time.Second))
	active, changes := e.Evaluate(t0.Add(15 * time.Second))
	if len(active) != 0 || len(changes) != 1 || changes[0].Rule != "a" || changes[0].State != Resolved || !changes[0].ResolvedAt.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("a changed, b removed: active %+v, changes %+v", active, changes)
	}
}
