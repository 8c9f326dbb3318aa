package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Incidents are faults in the simulated audience for a window of time, so
// that alerting can be rehearsed (PlaybackStream spec.incidents; the
// controller writes them into PRODUCER_INCIDENTS with absolute times, so
// a scheduled incident starts and ends without the producer restarting):
//
//   - IncidentCDN: a CDN degrades. Its sessions stall Stall times as often,
//     start Startup times as slowly, and the CDN sustains Bitrate times the
//     throughput, so they play (and downshift within seconds to) the
//     highest ladder rung at or below that share of their network's;
//   - IncidentErrors: an error burst on a device class. Its fatal playback
//     errors come Factor times as often and its start failures are Factor
//     times as likely (at most every start);
//   - IncidentCrowd: a flash crowd. The audience and the event rate are
//     Factor times the stream's: Poisson arrivals come Factor times as
//     fast and the simulator's population control starts the extra viewers
//     within about a minute (Sim.Rate rises with it, so the pacer sends
//     Factor times the events); when the crowd ends, the rate falls back
//     and as many viewers as the crowd added leave (stop quit) at their
//     next event, within a heartbeat interval or two.
//
// Overlapping incidents multiply. A playing session takes a change into
// account at its next event, heartbeats included (at most
// HEARTBEAT_INTERVAL later): its competing clocks are memoryless, so they
// are drawn again from the new rates.
const (
	IncidentCDN    = "cdn"
	IncidentErrors = "errors"
	IncidentCrowd  = "crowd"
)

// Bounds of the incident knobs; the PlaybackStream CRD repeats them (a test
// in services/controller checks they agree).
const (
	MaxIncidents     = 16
	MaxStallFactor   = 100.0
	MinBitrateFactor = 0.05
	MaxStartupFactor = 20.0
	MaxErrorFactor   = 1000.0
	MaxCrowdFactor   = 10.0
)

// Incident is one fault over [From, Until).
type Incident struct {
	Name        string
	Kind        string // IncidentCDN, IncidentErrors or IncidentCrowd
	From, Until time.Time
	CDN         string  // IncidentCDN: one of CDNs
	Device      string  // IncidentErrors: one of Devices
	Stall       float64 // IncidentCDN: stall frequency factor, ≥ 1
	Bitrate     float64 // IncidentCDN: share of the throughput sustained, (0, 1]
	Startup     float64 // IncidentCDN: startup time factor, ≥ 1
	Factor      float64 // IncidentErrors: fatal error factor; IncidentCrowd: audience factor
}

// CDNs lists the CDN values the simulator emits.
func CDNs() []string {
	out := make([]string, len(cdns))
	for i, c := range cdns {
		out[i] = c.name
	}
	return out
}

// Active reports whether the incident is in effect at t.
func (in Incident) Active(t time.Time) bool { return !t.Before(in.From) && t.Before(in.Until) }

// String is the incident in the PRODUCER_INCIDENTS form.
func (in Incident) String() string {
	var b strings.Builder
	f := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + v)
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	f("name", in.Name)
	f("kind", in.Kind)
	switch in.Kind {
	case IncidentCDN:
		f("cdn", in.CDN)
		f("stall", num(in.Stall))
		f("bitrate", num(in.Bitrate))
		f("startup", num(in.Startup))
	case IncidentErrors:
		f("device", in.Device)
		f("factor", num(in.Factor))
	case IncidentCrowd:
		f("factor", num(in.Factor))
	}
	f("from", in.From.UTC().Format(time.RFC3339))
	f("until", in.Until.UTC().Format(time.RFC3339))
	return b.String()
}

// FormatIncidents is the PRODUCER_INCIDENTS value of a list: the
// incidents' String forms joined by "; ".
func FormatIncidents(list []Incident) string {
	parts := make([]string, len(list))
	for i, in := range list {
		parts[i] = in.String()
	}
	return strings.Join(parts, "; ")
}

// ParseIncidents reads a PRODUCER_INCIDENTS value: incidents separated by
// ";", each a list of key=value separated by spaces:
//
//	name=fastly-slow kind=cdn cdn=fastly stall=5 bitrate=0.5 startup=2 from=2026-12-05T21:00:00Z until=2026-12-05T21:05:00Z
//	name=tv-errors kind=errors device=tv factor=20 from=… until=…
//	name=kick-off kind=crowd factor=3 from=… until=…
//
// Times are RFC 3339. Omitted factors take the defaults of the
// PlaybackStream API (stall 5, bitrate 0.5, startup 2, errors 20, crowd 3).
func ParseIncidents(s string) ([]Incident, error) {
	var out []Incident
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		in, err := parseIncident(part)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o Incident) bool { return o.Name == in.Name }) {
			return nil, fmt.Errorf("incident %q given twice", in.Name)
		}
		out = append(out, in)
	}
	if len(out) > MaxIncidents {
		return nil, fmt.Errorf("%d incidents, at most %d", len(out), MaxIncidents)
	}
	return out, nil
}

func parseIncident(s string) (Incident, error) {
	var in Incident
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return in, fmt.Errorf("%q is not key=value", f)
		}
		if _, dup := kv[k]; dup {
			return in, fmt.Errorf("%s given twice in %q", k, strings.TrimSpace(s))
		}
		kv[k] = v
	}
	in.Name, in.Kind = kv["name"], kv["kind"]
	if !validName(in.Name) {
		return in, fmt.Errorf("incident name %q must be 1-63 lower-case letters, digits and '-'", in.Name)
	}
	where := "incident " + in.Name
	var err error
	num := func(key string, dst *float64, lo, hi float64) {
		v, ok := kv[key]
		if !ok || err != nil {
			return
		}
		x, perr := strconv.ParseFloat(v, 64)
		switch {
		case perr != nil || math.IsNaN(x):
			err = fmt.Errorf("%s: %s=%q is not a number", where, key, v)
		case x < lo || x > hi:
			err = fmt.Errorf("%s: %s must be between %g and %g, got %g", where, key, lo, hi, x)
		}
		*dst = x
	}
	allowed := []string{"name", "kind", "from", "until"}
	switch in.Kind {
	case IncidentCDN:
		allowed = append(allowed, "cdn", "stall", "bitrate", "startup")
		in.CDN, in.Stall, in.Bitrate, in.Startup = kv["cdn"], 5, 0.5, 2
		if !slices.Contains(CDNs(), in.CDN) {
			return in, fmt.Errorf("%s: cdn %q is not one of %s", where, in.CDN, strings.Join(CDNs(), ", "))
		}
		num("stall", &in.Stall, 1, MaxStallFactor)
		num("bitrate", &in.Bitrate, MinBitrateFactor, 1)
		num("startup", &in.Startup, 1, MaxStartupFactor)
	case IncidentErrors:
		allowed = append(allowed, "device", "factor")
		in.Device, in.Factor = kv["device"], 20
		if !slices.Contains(Devices[:], in.Device) {
			return in, fmt.Errorf("%s: device %q is not one of %s", where, in.Device, strings.Join(Devices[:], ", "))
		}
		num("factor", &in.Factor, 1, MaxErrorFactor)
	case IncidentCrowd:
		allowed = append(allowed, "factor")
		in.Factor = 3
		num("factor", &in.Factor, 1, MaxCrowdFactor)
	default:
		return in, fmt.Errorf("%s: kind %q is not one of cdn, errors, crowd", where, in.Kind)
	}
	if err != nil {
		return in, err
	}
	for k := range kv {
		if !slices.Contains(allowed, k) {
			return in, fmt.Errorf("%s: unknown key %q for kind %s", where, k, in.Kind)
		}
	}
	for _, k := range []string{"from", "until"} {
		t, terr := time.Parse(time.RFC3339, kv[k])
		if terr != nil {
			return in, fmt.Errorf("%s: %s=%q is not an RFC 3339 time", where, k, kv[k])
		}
		if k == "from" {
			in.From = t
		} else {
			in.Until = t
		}
	}
	if !in.Until.After(in.From) {
		return in, fmt.Errorf("%s: until must be after from", where)
	}
	return in, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// effects is what the incidents active at one time do, per CDN and device.
type effects struct {
	epoch   uint32 // bumped whenever the set of active incidents changes
	stall   []float64
	bitrate []float64
	startup []float64
	errors  []float64 // by device
}

// schedule is the parsed incident list of a simulator, in Unix ns.
type schedule struct {
	list     []Incident
	from, to []int64
	crowdMax float64 // the largest audience factor any moment can have
}

func newSchedule(list []Incident) schedule {
	sc := schedule{list: list, crowdMax: 1}
	for _, in := range list {
		sc.from = append(sc.from, in.From.UnixNano())
		sc.to = append(sc.to, in.Until.UnixNano())
		if in.Kind == IncidentCrowd {
			sc.crowdMax *= in.Factor
		}
	}
	return sc
}

// crowd is the audience factor at t (1 without a flash crowd).
func (sc *schedule) crowd(t int64) float64 {
	f := 1.0
	for i, in := range sc.list {
		if in.Kind == IncidentCrowd && t >= sc.from[i] && t < sc.to[i] {
			f *= in.Factor
		}
	}
	return f
}

// apply sets fx to the effects at t and returns the next time they change
// (math.MaxInt64: never).
func (sc *schedule) apply(fx *effects, t int64) int64 {
	n := len(cdns)
	if fx.stall == nil {
		fx.stall, fx.bitrate, fx.startup = make([]float64, n), make([]float64, n), make([]float64, n)
		fx.errors = make([]float64, numDevices)
	}
	for i := range n {
		fx.stall[i], fx.bitrate[i], fx.startup[i] = 1, 1, 1
	}
	for d := range fx.errors {
		fx.errors[d] = 1
	}
	next := int64(math.MaxInt64)
	for i, in := range sc.list {
		if sc.from[i] > t {
			next = min(next, sc.from[i])
			continue
		}
		if sc.to[i] <= t {
			continue
		}
		next = min(next, sc.to[i])
		switch in.Kind {
		case IncidentCDN:
			c := slices.IndexFunc(cdns, func(w weighted) bool { return w.name == in.CDN })
			fx.stall[c] *= in.Stall
			fx.bitrate[c] *= in.Bitrate
			fx.startup[c] *= in.Startup
		case IncidentErrors:
			fx.errors[slices.Index(Devices[:], in.Device)] *= in.Factor
		}
	}
	fx.epoch++
	return next
}

// capRung is the highest rung a session may play now: its network's, or
// under a degraded CDN the highest rung at or below that share of it.
func (g *gen) capRung(ss *session) int8 {
	f := 1.0
	if g.fx.bitrate != nil {
		f = g.fx.bitrate[ss.cdn]
	}
	if f >= 1 {
		return ss.capRung
	}
	limit := float64(ladder[ss.capRung]) * f
	r := ss.capRung
	for r > 0 && float64(ladder[r]) > limit {
		r--
	}
	return r
}

// factor returns v[i], or 1 before the schedule was first applied (the
// model's pilot run never applies it).
func factor(v []float64, i uint8) float64 {
	if v == nil {
		return 1
	}
	return v[i]
}
