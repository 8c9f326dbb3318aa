package sim

import (
	"math"

	"math/rand/v2"
	"playpulse.dev/services/playback/event"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Model constants. Values marked "model choice" have no source; the rest
// come from /work/shared/reference/playback-qoe.md (see the package doc).
const (
	// Titles: 70% episodes of 22-60 min, 30% films of 90-150 min (model choice).
	episodeShare              = 0.7
	episodeMin, episodeMax    = 22 * 60, 60 * 60
	filmMin, filmMax          = 90 * 60, 150 * 60
	resumeShare               = 0.2 // views that continue a title ("continue watching"), model choice
	resumeFrom, resumeTo      = 0.05, 0.9
	watchSigma                = 0.8 // lognormal spread of the intended play time, model choice
	pauseBeforeQuitShare      = 0.25
	abandonAfter              = 2.0 // s: Krishnan & Sitaraman: abandonment starts after 2 s
	startFailMin, startFailTo = 0.5, 4.0
	stopAfterErrorMin         = 0.1
	stopAfterErrorMax         = 1.5

	pauseEvery        = 1200.0 // s of play per pause, model choice
	pauseMedian       = 30.0
	pauseSigma        = 1.2
	pauseMax          = 30 * 60
	seekEvery         = 900.0 // s of play per seek, model choice
	seekForwardShare  = 0.65
	seekFwdMedian     = 30.0
	seekFwdSigma      = 1.2
	seekBackMedian    = 15.0
	seekBackSigma     = 1.0
	stallMedian       = 2.0 // s, reference: lognormal, median ~2 s
	stallSigma        = 1.0
	stallMax          = 600.0
	patienceMedian    = 30.0 // s a viewer waits in a stall before quitting, model choice
	patienceSigma     = 0.6
	stallSessionSigma = 1.0 // spread of per-session stall proneness (bad networks), model choice
	stallErrorShare   = 0.1 // stalls that log a non-fatal error
	downshiftAfter    = 0.7 // stalls followed by a downshift (reference: "usually")
	downshiftDelay    = 1.5
	climbFast         = 3.0  // s per upshift during the first minute
	climbSlow         = 30.0 // s per upshift afterwards
	fluctuateEvery    = 600.0
	nonFatalEvery     = 3600.0 // s of play per non-fatal error, model choice
)

// ladder is Netflix's classic fixed ladder (kbps), as in package player.
var ladder = [...]int{235, 375, 560, 750, 1050, 1750, 2350, 3000, 4300, 5800}

type deviceModel struct {
	startupMedian, startupSigma float64 // lognormal startup time, s
	watch                       float64 // relative mean play time (minutes in the reference)
	stall                       float64 // relative stall frequency
	maxRung                     int
	net                         [numNets]float64
}

const (
	netWifi = iota
	netEthernet
	netCellular
	numNets
)

var netNames = [numNets]string{"wifi", "ethernet", "cellular"}

// capacity range (ladder rungs) a session on each network sustains, model choice.
var netCapacity = [numNets][2]int{netWifi: {5, 9}, netEthernet: {7, 9}, netCellular: {2, 6}}

// Startup: TV median 1.5 s, mobile 2.5 s, p95 6-8 s (reference); watch time
// TV 29 min, mobile 9 min (reference, Conviva); desktop and tablet values,
// stall multipliers other than mobile = 2x TV, ladder caps and networks are
// model choices.
var deviceModels = [numDevices]deviceModel{
	devTV:      {1.5, 0.90, 29, 1.0, 9, [numNets]float64{0.6, 0.4, 0}},
	devMobile:  {2.5, 0.70, 9, 2.0, 7, [numNets]float64{0.4, 0, 0.6}},
	devDesktop: {1.8, 0.80, 16, 1.2, 9, [numNets]float64{0.65, 0.35, 0}},
	devTablet:  {2.0, 0.80, 18, 1.5, 8, [numNets]float64{0.85, 0, 0.15}},
}

type weighted struct {
	name string
	w    float64
}

// Countries (ISO 3166-1 alpha-2) and CDNs, model choice.
var countries = []weighted{
	{"US", 0.30}, {"BR", 0.08}, {"GB", 0.07}, {"IN", 0.07}, {"DE", 0.06}, {"MX", 0.06},
	{"FR", 0.05}, {"CA", 0.05}, {"JP", 0.04}, {"ES", 0.04}, {"IT", 0.04}, {"AU", 0.03},
	{"NL", 0.03}, {"KR", 0.03}, {"PL", 0.02}, {"SE", 0.02}, {"AR", 0.01},
}

var cdns = []weighted{{"akamai", 0.45}, {"cloudfront", 0.30}, {"fastly", 0.25}}

var (
	startErrorCodes    = []string{"MANIFEST_LOAD_FAILED", "DRM_LICENSE_DENIED", "NETWORK_TIMEOUT", "SEGMENT_NOT_FOUND", "PLAYER_INIT_FAILED"}
	fatalErrorCodes    = []string{"MEDIA_DECODE_ERROR", "NETWORK_ERROR", "DRM_LICENSE_EXPIRED", "CDN_SERVER_ERROR"}
	nonFatalErrorCodes = []string{"SEGMENT_RETRY", "AUDIO_DISCONTINUITY", "LICENSE_RENEWAL_RETRY", "DROPPED_FRAMES"}
	stallErrorCodes    = []string{"SEGMENT_TIMEOUT", "SEGMENT_RETRY"}
)

// TitleDuration returns the duration of a title from its movie_id ("m0001"
// is the most popular title, rank 1). It depends on the rank only, so any
// component can compute it without the simulator's configuration.
func TitleDuration(movieID string) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(movieID, "m"))
	if err != nil || n < 1 || !strings.HasPrefix(movieID, "m") {
		return 0, false
	}
	return time.Duration(titleSeconds(n)) * time.Second, true
}

// titleSeconds is the duration of the title of rank n, deterministic.
func titleSeconds(n int) int64 {
	h := splitmix(uint64(n))
	u1 := float64(h>>11) / (1 << 53)
	u2 := float64(splitmix(h)>>11) / (1 << 53)
	if u1 < episodeShare {
		return int64(episodeMin + u2*(episodeMax-episodeMin))
	}
	return int64(filmMin + u2*(filmMax-filmMin))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func movieID(n, width int) string {
	s := strconv.Itoa(n)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return "m" + s
}

// model is everything derived from a Config, read-only once built and shared
// between simulators with the same configuration.
type model struct {
	cfg         Config
	timeShare   DeviceMix // share of viewing time (DEVICE_MIX)
	attempt     [numDevices]float64
	attemptCDF  []float64
	watchTarget [numDevices]float64 // mean play time per played view, s
	watchMedian [numDevices]float64 // lognormal median of the intended play time, s
	ebvsKappa   float64             // abandonment hazard after abandonAfter, 1/s
	stallBase   float64             // stalls per second of play, TV, before multipliers
	fatalRate   float64             // fatal playback errors per second of play
	netCDF      [numDevices][]float64
	countryCDF  []float64
	cdnCDF      []float64

	titleIDs []string
	titleDur []int64 // ns
	zipfCDF  []float64

	// From a pilot run of isolated sessions.
	eventsPerSession float64
	sessionSeconds   float64
}

var models sync.Map // Config with Seed 0 and no Incidents → *model

func getModel(cfg Config) *model {
	cfg.Seed = 0
	cfg.Incidents = "" // the model is the audience without faults
	if m, ok := models.Load(cfg); ok {
		return m.(*model)
	}
	m := buildModel(cfg)
	actual, _ := models.LoadOrStore(cfg, m)
	return actual.(*model)
}

func cdf(ws []float64) []float64 {
	out := make([]float64, len(ws))
	sum := 0.0
	for _, w := range ws {
		sum += w
	}
	acc := 0.0
	for i, w := range ws {
		acc += w
		out[i] = acc / sum
	}
	out[len(out)-1] = 1
	return out
}

func weights(ws []weighted) []float64 {
	out := make([]float64, len(ws))
	for i, w := range ws {
		out[i] = w.w
	}
	return out
}

// pick returns the index of u ∈ [0,1) in a cumulative distribution.
func pick(c []float64, u float64) int {
	i := sort.SearchFloat64s(c, u)
	for i < len(c)-1 && c[i] <= u {
		i++
	}
	if i >= len(c) {
		i = len(c) - 1
	}
	return i
}

// normQuantiles returns n standard normal quantiles at (i+0.5)/n, a
// deterministic sample for expectations over lognormals.
func normQuantiles(n int) []float64 {
	q := make([]float64, n)
	for i := range q {
		p := (float64(i) + 0.5) / float64(n)
		q[i] = math.Sqrt2 * math.Erfinv(2*p-1)
	}
	return q
}

func buildModel(cfg Config) *model {
	m := &model{cfg: cfg}
	m.timeShare, _ = ParseDeviceMix(cfg.DeviceMix)

	// Catalogue: rank n = index n-1.
	width := max(4, len(strconv.Itoa(cfg.CatalogSize)))
	m.titleIDs = make([]string, cfg.CatalogSize)
	m.titleDur = make([]int64, cfg.CatalogSize)
	zw := make([]float64, cfg.CatalogSize)
	for i := range m.titleIDs {
		m.titleIDs[i] = movieID(i+1, width)
		m.titleDur[i] = titleSeconds(i+1) * int64(time.Second)
		zw[i] = math.Pow(float64(i+1), -cfg.ZipfAlpha)
	}
	m.zipfCDF = cdf(zw)
	m.countryCDF = cdf(weights(countries))
	m.cdnCDF = cdf(weights(cdns))
	for d := range deviceModels {
		m.netCDF[d] = cdf(deviceModels[d].net[:])
	}

	// Mean play time per device: the reference's relative values, scaled so
	// that the mean over played views is MEAN_WATCH_TIME. DEVICE_MIX is a
	// share of viewing time, so played views per device ∝ share / mean.
	sum := 0.0
	for d, w := range m.timeShare {
		if w > 0 {
			sum += w / deviceModels[d].watch
		}
	}
	k := cfg.MeanWatchTime.Seconds() * sum
	var played [numDevices]float64
	for d, w := range m.timeShare {
		m.watchTarget[d] = k * deviceModels[d].watch
		played[d] = w / m.watchTarget[d]
	}

	// Start attempts per device: played views / P(first frame), with the
	// exit-before-start hazard chosen so the overall EBVS share matches.
	z := normQuantiles(2000)
	excess := func(d int) []float64 { // (startup - abandonAfter)+ at the quantiles
		dm := deviceModels[d]
		out := make([]float64, 0, len(z))
		for _, q := range z {
			if s := dm.startupMedian * math.Exp(dm.startupSigma*q); s > abandonAfter {
				out = append(out, s-abandonAfter)
			}
		}
		return out
	}
	var ex [numDevices][]float64
	for d := range ex {
		ex[d] = excess(d)
	}
	qd := func(d int, kappa float64) float64 { // P(exit before start | device, no failure)
		s := 0.0
		for _, x := range ex[d] {
			s += -math.Expm1(-kappa * x)
		}
		return s / float64(len(z))
	}
	fail := cfg.StartFailureRate
	m.attempt = played
	for range 6 {
		norm(m.attempt[:])
		target := cfg.ExitBeforeStartRate / (1 - fail)
		lo, hi := 0.0, 1000.0
		for range 50 {
			mid := (lo + hi) / 2
			q := 0.0
			for d := range m.attempt {
				q += m.attempt[d] * qd(d, mid)
			}
			if q < target {
				lo = mid
			} else {
				hi = mid
			}
		}
		m.ebvsKappa = (lo + hi) / 2
		for d := range m.attempt {
			m.attempt[d] = played[d] / ((1 - fail) * (1 - qd(d, m.ebvsKappa)))
		}
	}
	norm(m.attempt[:])
	m.attemptCDF = cdf(m.attempt[:])

	// Stalls: with h stalls per play second (device multiplier m_d) and mean
	// stall µ (capped by the viewer's patience), the ratio over the mix is
	// r = h µ Σ w_d m_d / Σ w_d (1 + h µ m_d); solve for h.
	zq := normQuantiles(200)
	mu := 0.0
	for _, a := range zq {
		for _, b := range zq {
			mu += min(stallMedian*math.Exp(stallSigma*a), patienceMedian*math.Exp(patienceSigma*b), stallMax)
		}
	}
	mu /= float64(len(zq) * len(zq))
	quitPerStall := 0.0 // P(stall outlasts the viewer's patience)
	for _, a := range zq {
		for _, b := range zq {
			if min(stallMedian*math.Exp(stallSigma*a), stallMax) > patienceMedian*math.Exp(patienceSigma*b) {
				quitPerStall++
			}
		}
	}
	quitPerStall /= float64(len(zq) * len(zq))
	wm := 0.0
	for d, w := range m.timeShare {
		wm += w * deviceModels[d].stall
	}
	r := cfg.RebufferRatio
	m.stallBase = r / ((1 - r) * mu * wm)
	m.fatalRate = cfg.PlaybackErrorRate / cfg.MeanWatchTime.Seconds()
	var cut [numDevices]float64
	for d := range cut {
		cut[d] = m.stallBase*deviceModels[d].stall*quitPerStall + m.fatalRate
	}
	m.calibrateWatch(cut)

	m.pilot()
	return m
}

func norm(v []float64) {
	s := 0.0
	for _, x := range v {
		s += x
	}
	if s > 0 {
		for i := range v {
			v[i] /= s
		}
	}
}

// calibrateWatch chooses, per device, the median of the lognormal intended
// play time W so that the mean realised play time equals the device's
// target, over a fixed sample of titles (Zipf), resume positions and W
// quantiles. Realised play time is min(W, rest of the title / (1 + seek
// drift), time to a session-ending stall or fatal error): forward seeks eat
// the rest of the title faster (net drift of a few percent), and cut[d] is
// the hazard per play second of quitting in a stall or failing.
func (m *model) calibrateWatch(cut [numDevices]float64) {
	fwd := seekFwdMedian * math.Exp(seekFwdSigma*seekFwdSigma/2)
	back := seekBackMedian * math.Exp(seekBackSigma*seekBackSigma/2)
	drift := (seekForwardShare*fwd - (1-seekForwardShare)*back) / seekEvery
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 8192
	rest := make([]float64, n)
	stop := make([]float64, n) // standard exponential: time to cut × hazard
	for i := range rest {
		t := pick(m.zipfCDF, rng.Float64())
		d := float64(m.titleDur[t]) / 1e9
		start := 0.0
		if rng.Float64() < resumeShare {
			start = d * (resumeFrom + rng.Float64()*(resumeTo-resumeFrom))
		}
		rest[i] = (d - start) / (1 + drift)
		stop[i] = rng.ExpFloat64()
	}
	z := normQuantiles(n)
	rng.Shuffle(n, func(i, j int) { z[i], z[j] = z[j], z[i] })
	for d := range m.watchMedian {
		mean := func(median float64) float64 {
			s := 0.0
			for i, r := range rest {
				s += min(median*math.Exp(watchSigma*z[i]), r, stop[i]/cut[d])
			}
			return s / n
		}
		lo, hi := math.Log(1), math.Log(1e6)
		for range 50 {
			mid := (lo + hi) / 2
			if mean(math.Exp(mid)) < m.watchTarget[d] {
				lo = mid
			} else {
				hi = mid
			}
		}
		m.watchMedian[d] = math.Exp((lo + hi) / 2)
	}
}

// pilot runs isolated sessions (every event on time) to learn the mean
// number of events and the mean duration of a session, which size the
// population for a given event rate.
func (m *model) pilot() {
	g := &gen{m: m, rng: rand.New(rand.NewPCG(3, 4)), hb: int64(m.cfg.HeartbeatInterval), pilot: true}
	var ss session
	var e event.Event
	const n = 2000
	events, secs := 0, 0.0
	for range n {
		g.begin(&ss, 0, &e)
		events++
		for {
			events++
			if g.emit(&ss, ss.due, &e, false) {
				break
			}
		}
		secs += float64(ss.last) / 1e9
	}
	m.eventsPerSession = float64(events) / n
	m.sessionSeconds = secs / n
}
