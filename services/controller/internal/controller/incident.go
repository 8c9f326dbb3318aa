package controller

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/sim"
)

// Incidents reach the producers as PRODUCER_INCIDENTS, with absolute times
// (sim.ParseIncidents). Why this way: the producer reads its configuration
// once, at start (nothing reads configuration after loading), and with
// absolute times a scheduled incident starts and ends inside the running
// producers; only adding, changing or removing an incident changes the pod
// template and rolls them, like any other spec change. A roll starts a new
// simulated audience (the fan-out times the old one out), so rehearsals
// that must not disturb the figures apply incidents a few minutes ahead
// (docs/alerts.md).
const incidentsVar = "PRODUCER_INCIDENTS"

// resolveIncidents turns spec.incidents into windows with absolute times.
// An incident without a start keeps the start it was first given: the one
// the running producers have (prev, from the Deployment's
// PRODUCER_INCIDENTS), else now. Taking it from the Deployment rather than
// from the status means a lost or conflicting status write cannot move an
// incident, which would roll the producers again. Times are whole seconds,
// as PRODUCER_INCIDENTS writes them.
func resolveIncidents(spec []v1alpha1.Incident, prev []sim.Incident, now time.Time) []sim.Incident {
	if len(spec) == 0 {
		return nil
	}
	out := make([]sim.Incident, 0, len(spec))
	for _, in := range spec {
		from := now.Truncate(time.Second)
		switch {
		case in.Start != nil:
			from = in.Start.Truncate(time.Second)
		default:
			for _, p := range prev {
				if p.Name == in.Name {
					from = p.From
				}
			}
		}
		si := sim.Incident{Name: in.Name, From: from.UTC(), Until: from.Add(in.Duration.Duration).Truncate(time.Second).UTC()}
		if !si.Until.After(si.From) {
			si.Until = si.From.Add(time.Second)
		}
		switch {
		case in.CDNDegradation != nil:
			c := in.CDNDegradation
			si.Kind, si.CDN = sim.IncidentCDN, c.CDN
			si.Stall, si.Bitrate, si.Startup = orDefault(c.StallFactor, 5), orDefault(c.BitrateFactor, 0.5), orDefault(c.StartupFactor, 2)
		case in.ErrorBurst != nil:
			si.Kind, si.Device, si.Factor = sim.IncidentErrors, in.ErrorBurst.Device, orDefault(in.ErrorBurst.Factor, 20)
		case in.FlashCrowd != nil:
			si.Kind, si.Factor = sim.IncidentCrowd, orDefault(in.FlashCrowd.Factor, 3)
		default:
			continue // the API server refuses it (exactly one kind)
		}
		out = append(out, si)
	}
	return out
}

// orDefault is the CRD's default for a factor left at 0 (an object built
// in code rather than read from the API server).
func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// deployedIncidents are the incidents in the environment of a Deployment's
// producer container; nil when there are none or they cannot be read.
func deployedIncidents(d *appsv1.Deployment) []sim.Incident {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != producerContainer {
			continue
		}
		for _, v := range c.Env {
			if v.Name == incidentsVar {
				list, err := sim.ParseIncidents(v.Value)
				if err != nil {
					return nil
				}
				return list
			}
		}
	}
	return nil
}

// incidentStatus is what the status says of the incidents at now, and
// how long until one starts or ends (0: never).
func incidentStatus(list []sim.Incident, now time.Time) ([]v1alpha1.IncidentStatus, string, *metav1.Time, time.Duration) {
	if len(list) == 0 {
		return nil, "", nil, 0
	}
	var (
		out    []v1alpha1.IncidentStatus
		active []string
		next   time.Time
	)
	soonest := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, in := range list {
		st := v1alpha1.IncidentStatus{Name: in.Name, Start: metav1.NewTime(in.From), End: metav1.NewTime(in.Until)}
		switch {
		case now.Before(in.From):
			st.State = v1alpha1.IncidentScheduled
		case in.Active(now):
			st.State = v1alpha1.IncidentActive
			active = append(active, in.Name)
		default:
			st.State = v1alpha1.IncidentEnded
		}
		soonest(in.From)
		soonest(in.Until)
		out = append(out, st)
	}
	if next.IsZero() {
		return out, strings.Join(active, ","), nil, 0
	}
	t := metav1.NewTime(next)
	return out, strings.Join(active, ","), &t, next.Sub(now)
}

// describeActive says what the incidents active at now do, for an Event.
func describeActive(list []sim.Incident, now time.Time) string {
	var parts []string
	for _, in := range list {
		if in.Active(now) {
			parts = append(parts, fmt.Sprintf("%s until %s (%s)", in.Name, in.Until.Format(time.RFC3339), in))
		}
	}
	return strings.Join(parts, "; ")
}
