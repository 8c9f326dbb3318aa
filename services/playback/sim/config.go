package sim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"playpulse.dev/services/playback/envconf"
)

// Config holds every knob of the simulator. The envconfig names carry no
// service prefix: the producer embeds Config under PRODUCER_, so CATALOG_SIZE
// is read from PRODUCER_CATALOG_SIZE. Defaults and their sources are listed in
// the package documentation.
type Config struct {
	CatalogSize int     `envconfig:"CATALOG_SIZE" default:"2000" min:"1" max:"1000000" desc:"number of titles in the catalogue"`
	ZipfAlpha   float64 `envconfig:"ZIPF_ALPHA" default:"0.9" min:"0.01" max:"5" desc:"Zipf exponent of title popularity, P(rank n) ∝ n^-alpha"`
	Users       int     `envconfig:"USERS" default:"200000" min:"1" desc:"number of distinct viewers that user_id is drawn from"`
	DeviceMix   string  `envconfig:"DEVICE_MIX" default:"tv:0.72,mobile:0.12,desktop:0.11,tablet:0.05" desc:"share of viewing time by device, device:weight,... (tv, mobile, desktop, tablet; weights are normalised)"`

	MeanWatchTime       time.Duration `envconfig:"MEAN_WATCH_TIME" default:"20m" min:"1m" max:"40m" desc:"mean play time of a view that reached the first frame; titles last 22-150 minutes (per device: tv 1.45x, mobile 0.45x, desktop 0.8x, tablet 0.9x, then rescaled so the overall mean matches)"`
	StartFailureRate    float64       `envconfig:"START_FAILURE_RATE" default:"0.02" min:"0" max:"0.5" desc:"fraction of start attempts that end in a fatal error before the first frame (video start failure)"`
	ExitBeforeStartRate float64       `envconfig:"EXIT_BEFORE_START_RATE" default:"0.05" min:"0" max:"0.25" desc:"fraction of start attempts the viewer abandons before the first frame; abandonment grows with the startup time, so it needs a slow startup"`
	RebufferRatio       float64       `envconfig:"REBUFFER_RATIO" default:"0.005" min:"0" max:"0.3" desc:"stall intensity: target rebuffering ratio, stall time / (play time + stall time) after the first frame; mobile stalls 2x as often as tv"`
	PlaybackErrorRate   float64       `envconfig:"PLAYBACK_ERROR_RATE" default:"0.005" min:"0" max:"0.5" desc:"fraction of started views (first frame reached) that end in a fatal playback error"`

	HeartbeatInterval time.Duration `envconfig:"HEARTBEAT_INTERVAL" default:"10s" min:"1s" max:"10m" desc:"longest silence of a playing, paused or stalled session: a heartbeat is sent when nothing else happened for this long (CMCD's default is 30s; 10s makes dashboards move)"`

	DailyProfile   bool          `envconfig:"DAILY_PROFILE" default:"false" desc:"shape the event rate and session arrivals by a daily cycle (peak 1.7x the average at 21:00, trough 0.3x at 04:00); the pacer must then follow Sim.Rate"`
	DailyPeriod    time.Duration `envconfig:"DAILY_PERIOD" default:"24h" min:"1m" desc:"length of one simulated day of the daily profile; shorten it to see a whole cycle in a demo"`
	DailyUTCOffset int           `envconfig:"DAILY_UTC_OFFSET" default:"0" min:"-12" max:"14" desc:"hours added to UTC to get the viewers' local time for the daily profile"`

	MaxSessions int    `envconfig:"MAX_SESSIONS" default:"500000" min:"1" desc:"hard cap on live sessions (memory bound, about 300 bytes each)"`
	Seed        uint64 `envconfig:"SEED" default:"0" desc:"random seed; 0 picks a random one (Sim.Seed reports it); mixed with the instance id, so processes sharing a seed simulate different viewers; the same seed, instance id and sequence of Next times give the same events"`

	// Incidents are read once, with absolute times, so that a scheduled
	// incident starts and ends without a restart (see ParseIncidents).
	Incidents string `envconfig:"INCIDENTS" default:"" desc:"faults in the simulated audience, with absolute times (the controller writes them from PlaybackStream spec.incidents): incidents separated by ';', each key=value pairs: name=N kind=cdn cdn=akamai|cloudfront|fastly stall=5 bitrate=0.5 startup=2, or kind=errors device=tv|mobile|desktop|tablet factor=20, or kind=crowd factor=3; each with from=RFC3339 until=RFC3339"`
}

// DefaultConfig returns the configuration with every default applied; it is
// what envconfig produces from an empty environment.
func DefaultConfig() Config {
	return Config{
		CatalogSize:         2000,
		ZipfAlpha:           0.9,
		Users:               200000,
		DeviceMix:           "tv:0.72,mobile:0.12,desktop:0.11,tablet:0.05",
		MeanWatchTime:       20 * time.Minute,
		StartFailureRate:    0.02,
		ExitBeforeStartRate: 0.05,
		RebufferRatio:       0.005,
		PlaybackErrorRate:   0.005,
		HeartbeatInterval:   10 * time.Second,
		DailyProfile:        false,
		DailyPeriod:         24 * time.Hour,
		DailyUTCOffset:      0,
		MaxSessions:         500000,
		Seed:                0,
	}
}

// Validate checks every knob: the ranges declared by the min and max tags
// (envconf enforces them when the producer loads its configuration, and
// here for a Config built in code), then the device mix. Messages name the
// variable without prefix; all problems are reported, joined.
func (c Config) Validate() error {
	err := envconf.Check(&c)
	if _, mixErr := ParseDeviceMix(c.DeviceMix); mixErr != nil {
		err = errors.Join(err, envconf.Invalid("DEVICE_MIX", "%v", mixErr))
	}
	if _, incErr := ParseIncidents(c.Incidents); incErr != nil {
		err = errors.Join(err, envconf.Invalid("INCIDENTS", "%v", incErr))
	}
	return err
}

// Devices lists the device values the simulator emits, in DeviceMix order.
var Devices = [numDevices]string{"tv", "mobile", "desktop", "tablet"}

const (
	devTV = iota
	devMobile
	devDesktop
	devTablet
	numDevices
)

// DeviceMix is a share per device, indexed like Devices, summing to 1.
type DeviceMix [numDevices]float64

// ParseDeviceMix parses "tv:0.72,mobile:0.12,..." into normalised shares.
// Devices not named get 0; at least one weight must be positive.
func ParseDeviceMix(s string) (DeviceMix, error) {
	var m DeviceMix
	seen := [numDevices]bool{}
	sum := 0.0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, ":")
		if !ok {
			return m, fmt.Errorf("%q is not device:weight", part)
		}
		name = strings.TrimSpace(name)
		i := -1
		for j, d := range Devices {
			if d == name {
				i = j
			}
		}
		if i < 0 {
			return m, fmt.Errorf("unknown device %q (want tv, mobile, desktop or tablet)", name)
		}
		if seen[i] {
			return m, fmt.Errorf("device %q given twice", name)
		}
		seen[i] = true
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return m, fmt.Errorf("weight of %q must be a number ≥ 0, got %q", name, val)
		}
		m[i] = w
		sum += w
	}
	if sum <= 0 {
		return m, errors.New("needs at least one device with a positive weight")
	}
	for i := range m {
		m[i] /= sum
	}
	return m, nil
}
