package controller

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/yaml"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/sim"
)

func incidents(list ...v1alpha1.Incident) func(*v1alpha1.PlaybackStream) {
	return func(s *v1alpha1.PlaybackStream) { s.Spec.Incidents = list }
}

// TestIncidentSchedule follows a stream's incidents through time with an
// injected clock, reconcile by reconcile: what PRODUCER_INCIDENTS says,
// what the status says, and when the controller looks again. Each step
// resolves the spec against the incidents of the Deployment the step
// before applied, as the reconciler does.
func TestIncidentSchedule(t *testing.T) {
	at := func(d time.Duration) *metav1.Time { x := metav1.NewTime(t0.Add(d)); return &x }
	spec := []v1alpha1.Incident{
		// Immediate: starts when the controller first sees it.
		{Name: "fastly-slow", Duration: metav1.Duration{Duration: 5 * time.Minute}, CDNDegradation: &v1alpha1.CDNDegradation{CDN: "fastly", StallFactor: 8}},
		// Scheduled.
		{Name: "tv-errors", Start: at(10 * time.Minute), Duration: metav1.Duration{Duration: 2 * time.Minute}, ErrorBurst: &v1alpha1.ErrorBurst{Device: "tv"}},
		{Name: "kick-off", Start: at(11 * time.Minute), Duration: metav1.Duration{Duration: 3 * time.Minute}, FlashCrowd: &v1alpha1.FlashCrowd{Factor: 2}},
	}
	steps := []struct {
		at      time.Duration // since t0, the first reconcile
		states  string        // fastly-slow, tv-errors, kick-off
		active  string
		next    time.Duration // since t0; 0: none
		requeue time.Duration
	}{
		{0, "Active Scheduled Scheduled", "fastly-slow", 5 * time.Minute, 5*time.Minute - 250*time.Millisecond},
		{90 * time.Second, "Active Scheduled Scheduled", "fastly-slow", 5 * time.Minute, 210 * time.Second},
		{5 * time.Minute, "Ended Scheduled Scheduled", "", 10 * time.Minute, 5 * time.Minute},
		{10 * time.Minute, "Ended Active Scheduled", "tv-errors", 11 * time.Minute, time.Minute},
		{11 * time.Minute, "Ended Active Active", "tv-errors,kick-off", 12 * time.Minute, time.Minute},
		{12*time.Minute + 500*time.Millisecond, "Ended Ended Active", "kick-off", 14 * time.Minute, 119*time.Second + 500*time.Millisecond},
		{14 * time.Minute, "Ended Ended Ended", "", 0, 0},
	}
	clk := clocktesting.NewFakePassiveClock(t0.Add(250 * time.Millisecond)) // a start is kept to the second
	var deployed []sim.Incident                                             // what the running producers have
	for i, step := range steps {
		if i > 0 {
			clk.SetTime(t0.Add(step.at))
		}
		s := testStream(incidents(spec...))
		got := resolveIncidents(s.Spec.Incidents, deployed, clk.Now())
		e := resolve(s, v1alpha1.TopicModeStrimzi, opts)
		e.Incidents = got
		var d appsv1.Deployment
		if err := convert(buildDeployment(s, e), &d); err != nil {
			t.Fatal(err)
		}
		if v := env(&d)[incidentsVar]; v != envString {
			t.Fatalf("step %d: %s=\n%s\nwant\n%s", i, incidentsVar, v, envString)
		}
		deployed = deployedIncidents(&d)

		st, requeue := computeStatus(statusInput{E: e, Topic: readyTopic(), Producer: func() producerState {
			p := readyProducers(3)
			p.Incidents = got
			return p
		}(), Now: clk.Now(), TopicReadyTimeout: time.Minute})
		var states []string
		for _, is := range st.Incidents {
			states = append(states, string(is.State))
		}
		if g := strings.Join(states, " "); g != step.states {
			t.Errorf("at %s: states %s, want %s", step.at, g, step.states)
		}
		if st.ActiveIncidents != step.active {
			t.Errorf("at %s: activeIncidents %q, want %q", step.at, st.ActiveIncidents, step.active)
		}
		switch {
		case step.next == 0 && st.NextIncidentChange != nil:
			t.Errorf("at %s: nextIncidentChange %s, want none", step.at, st.NextIncidentChange)
		case step.next != 0 && (st.NextIncidentChange == nil || !st.NextIncidentChange.Equal(at(step.next))):
			t.Errorf("at %s: nextIncidentChange %v, want %s", step.at, st.NextIncidentChange, t0.Add(step.next))
		}
		if requeue != step.requeue {
			t.Errorf("at %s: requeue after %s, want %s", step.at, requeue, step.requeue)
		}
		if st.Incidents[1].Start.Time != t0.Add(10*time.Minute) || st.Incidents[1].End.Time != t0.Add(12*time.Minute) {
			t.Errorf("at %s: tv-errors window %s – %s", step.at, st.Incidents[1].Start, st.Incidents[1].End)
		}
	}
	// A waiting Topic Operator that times out sooner wins the requeue.
	s := testStream(incidents(spec...))
	_, requeue := computeStatus(statusInput{E: resolve(s, v1alpha1.TopicModeStrimzi, opts), Topic: waitingTopic(),
		Producer: producerState{Held: true, HeldReason: v1alpha1.ReasonWaitingForTopic, Incidents: resolveIncidents(spec, nil, t0)},
		Now:      t0, TopicReadyTimeout: time.Minute})
	if requeue != time.Minute {
		t.Errorf("requeue %s, want the topic's timeout of 1m", requeue)
	}
}

// envString is the PRODUCER_INCIDENTS of TestIncidentSchedule, at every step.
const envString = "name=fastly-slow kind=cdn cdn=fastly stall=8 bitrate=0.5 startup=2 from=2026-11-24T21:00:00Z until=2026-11-24T21:05:00Z; " +
	"name=tv-errors kind=errors device=tv factor=20 from=2026-11-24T21:10:00Z until=2026-11-24T21:12:00Z; " +
	"name=kick-off kind=crowd factor=2 from=2026-11-24T21:11:00Z until=2026-11-24T21:14:00Z"

// TestResolveIncidents: an incident without a start keeps the one the
// producers run with as long as its name stays; a new name, or no
// deployed incidents, starts now; an explicit start always wins.
func TestResolveIncidents(t *testing.T) {
	five := metav1.Duration{Duration: 5 * time.Minute}
	crowd := &v1alpha1.FlashCrowd{Factor: 2}
	prev := []sim.Incident{{Name: "a", Kind: sim.IncidentCrowd, Factor: 2, From: t0, Until: t0.Add(5 * time.Minute)}}
	later := t0.Add(3 * time.Minute)
	explicit := metav1.NewTime(t0.Add(time.Hour))
	got := resolveIncidents([]v1alpha1.Incident{
		{Name: "a", Duration: five, FlashCrowd: crowd},
		{Name: "b", Duration: five, FlashCrowd: crowd},
		{Name: "c", Duration: five, FlashCrowd: crowd, Start: &explicit},
	}, prev, later)
	for i, want := range []time.Time{t0, later, explicit.Time} {
		if !got[i].From.Equal(want) || !got[i].Until.Equal(want.Add(5*time.Minute)) {
			t.Errorf("%s: %s – %s, want from %s", got[i].Name, got[i].From, got[i].Until, want)
		}
	}
	// Defaults for factors left unset in code; no incidents, no variable.
	got = resolveIncidents([]v1alpha1.Incident{
		{Name: "x", Duration: five, CDNDegradation: &v1alpha1.CDNDegradation{CDN: "akamai"}},
		{Name: "y", Duration: five, ErrorBurst: &v1alpha1.ErrorBurst{Device: "mobile"}},
		{Name: "z", Duration: five, FlashCrowd: &v1alpha1.FlashCrowd{}},
	}, nil, t0)
	if x := got[0]; x.Stall != 5 || x.Bitrate != 0.5 || x.Startup != 2 || got[1].Factor != 20 || got[2].Factor != 3 {
		t.Errorf("defaults: %+v", got)
	}
	if _, ok := env(deployment(t, testStream(nil), v1alpha1.TopicModeStrimzi))[incidentsVar]; ok {
		t.Errorf("%s set without incidents", incidentsVar)
	}
}

// TestIncidentBoundsMatchTheSimulator: the CRD's bounds are the
// simulator's (the generated CRD cannot read Go constants).
func TestIncidentBoundsMatchTheSimulator(t *testing.T) {
	if v1alpha1.MaxIncidents != sim.MaxIncidents {
		t.Errorf("v1alpha1.MaxIncidents %d, sim.MaxIncidents %d", v1alpha1.MaxIncidents, sim.MaxIncidents)
	}
	crd := readCRD(t)
	for _, c := range []struct {
		path string
		want string
	}{
		{"incidents.maxItems", "16"},
		{"cdnDegradation.stallFactor.maximum", fmtF(sim.MaxStallFactor)},
		{"cdnDegradation.bitrateFactor.minimum", fmtF(sim.MinBitrateFactor)},
		{"cdnDegradation.startupFactor.maximum", fmtF(sim.MaxStartupFactor)},
		{"errorBurst.factor.maximum", fmtF(sim.MaxErrorFactor)},
		{"flashCrowd.factor.maximum", fmtF(sim.MaxCrowdFactor)},
		{"cdn.enum", strings.Join(sim.CDNs(), ",")},
		{"device.enum", strings.Join(sim.Devices[:], ",")},
	} {
		if got := crd[c.path]; got != c.want {
			t.Errorf("CRD %s = %q, want %q (the simulator's)", c.path, got, c.want)
		}
	}
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// readCRD returns the bounds of spec.incidents in the generated CRD, by
// short paths ("cdnDegradation.stallFactor.maximum", "cdn.enum").
func readCRD(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../config/crd/bases/playpulse.dev_playbackstreams.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	get := func(m any, keys ...string) map[string]any {
		for _, k := range keys {
			m = m.(map[string]any)[k]
		}
		return m.(map[string]any)
	}
	inc := get(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, "properties", "spec", "properties", "incidents")
	item := get(inc, "items", "properties")
	out := map[string]string{"incidents.maxItems": fmtF(inc["maxItems"].(float64))}
	for kind, fields := range map[string][]string{"cdnDegradation": {"stallFactor", "bitrateFactor", "startupFactor"}, "errorBurst": {"factor"}, "flashCrowd": {"factor"}} {
		props := get(item, kind, "properties")
		for _, f := range fields {
			for _, bound := range []string{"minimum", "maximum"} {
				if v, ok := get(props, f)[bound].(float64); ok {
					out[kind+"."+f+"."+bound] = fmtF(v)
				}
			}
		}
	}
	for key, path := range map[string][]string{"cdn": {"cdnDegradation", "properties", "cdn"}, "device": {"errorBurst", "properties", "device"}} {
		var vals []string
		for _, v := range get(item, path...)["enum"].([]any) {
			vals = append(vals, v.(string))
		}
		out[key+".enum"] = strings.Join(vals, ",")
	}
	return out
}
