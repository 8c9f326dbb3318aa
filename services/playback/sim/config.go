package sim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Config holds every knob of the simulator. The envconfig names carry no
// service prefix: the producer embeds Config under PRODUCER_, so CATALOG_SIZE
// is read from PRODUCER_CATALOG_SIZE. Defaults and their sources are listed in
// the package documentation.
type Config struct {
	CatalogSize int     `envconfig:"CATALOG_SIZE" default:"2000" desc:"number of titles in the catalogue"`
	ZipfAlpha   float64 `envconfig:"ZIPF_ALPHA" default:"0.9" desc:"Zipf exponent of title popularity, P(rank n) ∝ n^-alpha"`
	Users       int     `envconfig:"USERS" default:"200000" desc:"number of distinct viewers that user_id is drawn from"`
	DeviceMix   string  `envconfig:"DEVICE_MIX" default:"tv:0.72,mobile:0.12,desktop:0.11,tablet:0.05" desc:"share of viewing time by device, device:weight,... (tv, mobile, desktop, tablet; weights are normalised)"`

	MeanWatchTime       time.Duration `envconfig:"MEAN_WATCH_TIME" default:"20m" desc:"mean play time of a view that reached the first frame (per device: tv 1.45x, mobile 0.45x, desktop 0.8x, tablet 0.9x, then rescaled so the overall mean matches)"`
	StartFailureRate    float64       `envconfig:"START_FAILURE_RATE" default:"0.02" desc:"fraction of start attempts that end in a fatal error before the first frame (video start failure)"`
	ExitBeforeStartRate float64       `envconfig:"EXIT_BEFORE_START_RATE" default:"0.05" desc:"fraction of start attempts the viewer abandons before the first frame; abandonment grows with the startup time"`
	RebufferRatio       float64       `envconfig:"REBUFFER_RATIO" default:"0.005" desc:"stall intensity: target rebuffering ratio, stall time / (play time + stall time) after the first frame; mobile stalls 2x as often as tv"`
	PlaybackErrorRate   float64       `envconfig:"PLAYBACK_ERROR_RATE" default:"0.005" desc:"fraction of started views (first frame reached) that end in a fatal playback error"`

	HeartbeatInterval time.Duration `envconfig:"HEARTBEAT_INTERVAL" default:"10s" desc:"longest silence of a playing, paused or stalled session: a heartbeat is sent when nothing else happened for this long (CMCD's default is 30s; 10s makes dashboards move)"`

	DailyProfile   bool          `envconfig:"DAILY_PROFILE" default:"false" desc:"shape the event rate and session arrivals by a daily cycle (peak 1.7x the average at 21:00, trough 0.3x at 04:00); the pacer must then follow Sim.Rate"`
	DailyPeriod    time.Duration `envconfig:"DAILY_PERIOD" default:"24h" desc:"length of one simulated day of the daily profile; shorten it to see a whole cycle in a demo"`
	DailyUTCOffset int           `envconfig:"DAILY_UTC_OFFSET" default:"0" desc:"hours added to UTC to get the viewers' local time for the daily profile"`

	MaxSessions int    `envconfig:"MAX_SESSIONS" default:"500000" desc:"hard cap on live sessions (memory bound, about 300 bytes each)"`
	Seed        uint64 `envconfig:"SEED" default:"0" desc:"random seed; 0 picks a random one (Sim.Seed reports it); mixed with the instance id, so processes sharing a seed simulate different viewers; the same seed, instance id and sequence of Next times give the same events"`
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

// Validate checks every knob; messages name the variable without prefix.
// All problems are reported, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	if c.CatalogSize < 1 || c.CatalogSize > 1_000_000 {
		bad("CATALOG_SIZE must be between 1 and 1000000, got %d", c.CatalogSize)
	}
	if !finite(c.ZipfAlpha) || c.ZipfAlpha <= 0 || c.ZipfAlpha > 5 {
		bad("ZIPF_ALPHA must be > 0 and ≤ 5, got %v", c.ZipfAlpha)
	}
	if c.Users < 1 {
		bad("USERS must be ≥ 1, got %d", c.Users)
	}
	if _, err := ParseDeviceMix(c.DeviceMix); err != nil {
		bad("DEVICE_MIX: %v", err)
	}
	if c.MeanWatchTime < time.Minute || c.MeanWatchTime > 40*time.Minute {
		bad("MEAN_WATCH_TIME must be between 1m and 40m (titles last 22-150 minutes), got %s", c.MeanWatchTime)
	}
	if !finite(c.StartFailureRate) || c.StartFailureRate < 0 || c.StartFailureRate > 0.5 {
		bad("START_FAILURE_RATE must be between 0 and 0.5, got %v", c.StartFailureRate)
	}
	if !finite(c.ExitBeforeStartRate) || c.ExitBeforeStartRate < 0 || c.ExitBeforeStartRate > 0.25 {
		bad("EXIT_BEFORE_START_RATE must be between 0 and 0.25 (abandonment needs a slow startup), got %v", c.ExitBeforeStartRate)
	}
	if !finite(c.RebufferRatio) || c.RebufferRatio < 0 || c.RebufferRatio > 0.3 {
		bad("REBUFFER_RATIO must be between 0 and 0.3, got %v", c.RebufferRatio)
	}
	if !finite(c.PlaybackErrorRate) || c.PlaybackErrorRate < 0 || c.PlaybackErrorRate > 0.5 {
		bad("PLAYBACK_ERROR_RATE must be between 0 and 0.5, got %v", c.PlaybackErrorRate)
	}
	if c.HeartbeatInterval < time.Second || c.HeartbeatInterval > 10*time.Minute {
		bad("HEARTBEAT_INTERVAL must be between 1s and 10m, got %s", c.HeartbeatInterval)
	}
	if c.DailyPeriod < time.Minute {
		bad("DAILY_PERIOD must be ≥ 1m, got %s", c.DailyPeriod)
	}
	if c.DailyUTCOffset < -12 || c.DailyUTCOffset > 14 {
		bad("DAILY_UTC_OFFSET must be between -12 and 14 hours, got %d", c.DailyUTCOffset)
	}
	if c.MaxSessions < 1 {
		bad("MAX_SESSIONS must be ≥ 1, got %d", c.MaxSessions)
	}
	return errors.Join(errs...)
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
