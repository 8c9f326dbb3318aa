package sim

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDefaultsMatchTags applies every default:"..." tag the way envconfig
// does and expects DefaultConfig; it also requires envconfig, default and
// desc tags on every field, and names without the service prefix.
func TestDefaultsMatchTags(t *testing.T) {
	var fromTags Config
	v := reflect.ValueOf(&fromTags).Elem()
	typ := v.Type()
	names := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, def, desc := f.Tag.Get("envconfig"), f.Tag.Get("default"), f.Tag.Get("desc")
		if name == "" || desc == "" {
			t.Errorf("%s: missing envconfig or desc tag", f.Name)
		}
		if _, ok := f.Tag.Lookup("default"); !ok {
			t.Errorf("%s: missing default tag", f.Name)
		}
		if strings.HasPrefix(name, "PRODUCER") || name != strings.ToUpper(name) {
			t.Errorf("%s: env name %q must be upper case and without the service prefix", f.Name, name)
		}
		if names[name] {
			t.Errorf("duplicate env name %s", name)
		}
		names[name] = true
		fv := v.Field(i)
		var err error
		switch {
		case fv.Type() == reflect.TypeFor[time.Duration]():
			var d time.Duration
			d, err = time.ParseDuration(def)
			fv.SetInt(int64(d))
		case fv.Kind() == reflect.Int:
			var n int64
			n, err = strconv.ParseInt(def, 10, 64)
			fv.SetInt(n)
		case fv.Kind() == reflect.Uint64:
			var n uint64
			n, err = strconv.ParseUint(def, 10, 64)
			fv.SetUint(n)
		case fv.Kind() == reflect.Float64:
			var x float64
			x, err = strconv.ParseFloat(def, 64)
			fv.SetFloat(x)
		case fv.Kind() == reflect.Bool:
			var b bool
			b, err = strconv.ParseBool(def)
			fv.SetBool(b)
		case fv.Kind() == reflect.String:
			fv.SetString(def)
		default:
			t.Fatalf("%s: unexpected kind %s", f.Name, fv.Kind())
		}
		if err != nil {
			t.Errorf("%s: default %q: %v", f.Name, def, err)
		}
	}
	if fromTags != DefaultConfig() {
		t.Fatalf("defaults from tags\n%+v\ndiffer from DefaultConfig\n%+v", fromTags, DefaultConfig())
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	// The knobs the brief asks for, with the reference's values.
	d := DefaultConfig()
	if d.ZipfAlpha != 0.9 || d.StartFailureRate != 0.02 || d.HeartbeatInterval != 10*time.Second ||
		d.MeanWatchTime != 20*time.Minute || d.CatalogSize != 2000 || d.Seed != 0 {
		t.Fatalf("unexpected defaults %+v", d)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.CatalogSize = 0 }, "CATALOG_SIZE: must be between 1 and 1000000"},
		{func(c *Config) { c.ZipfAlpha = 0 }, "ZIPF_ALPHA: must be between 0.01 and 5"},
		{func(c *Config) { c.ZipfAlpha = math.NaN() }, "ZIPF_ALPHA: must be between 0.01 and 5"},
		{func(c *Config) { c.Users = 0 }, "USERS: must be at least 1"},
		{func(c *Config) { c.DeviceMix = "tv:1,toaster:1" }, `DEVICE_MIX: unknown device "toaster"`},
		{func(c *Config) { c.DeviceMix = "tv:0" }, "DEVICE_MIX: needs at least one device"},
		{func(c *Config) { c.DeviceMix = "tv:-1,mobile:2" }, "DEVICE_MIX: weight of \"tv\""},
		{func(c *Config) { c.DeviceMix = "tv" }, "DEVICE_MIX: \"tv\" is not device:weight"},
		{func(c *Config) { c.DeviceMix = "tv:1,tv:2" }, "given twice"},
		{func(c *Config) { c.MeanWatchTime = time.Second }, "MEAN_WATCH_TIME: must be between 1m and 40m"},
		{func(c *Config) { c.MeanWatchTime = 2 * time.Hour }, "MEAN_WATCH_TIME: must be between 1m and 40m"},
		{func(c *Config) { c.StartFailureRate = -0.1 }, "START_FAILURE_RATE: must be between 0 and 0.5"},
		{func(c *Config) { c.StartFailureRate = 0.6 }, "START_FAILURE_RATE: must be between 0 and 0.5"},
		{func(c *Config) { c.ExitBeforeStartRate = 0.3 }, "EXIT_BEFORE_START_RATE: must be between 0 and 0.25"},
		{func(c *Config) { c.RebufferRatio = 0.5 }, "REBUFFER_RATIO: must be between"},
		{func(c *Config) { c.PlaybackErrorRate = 1 }, "PLAYBACK_ERROR_RATE: must be between"},
		{func(c *Config) { c.HeartbeatInterval = 0 }, "HEARTBEAT_INTERVAL: must be between 1s and 10m"},
		{func(c *Config) { c.DailyPeriod = time.Second }, "DAILY_PERIOD: must be at least 1m"},
		{func(c *Config) { c.DailyUTCOffset = 20 }, "DAILY_UTC_OFFSET: must be between -12 and 14"},
		{func(c *Config) { c.MaxSessions = 0 }, "MAX_SESSIONS: must be at least 1"},
	} {
		c := DefaultConfig()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
		if _, err := New(c, "s", "p"); err == nil {
			t.Errorf("New accepted an invalid config (%s)", tc.want)
		}
	}
	// Several problems are all reported.
	c := DefaultConfig()
	c.CatalogSize, c.Users = 0, 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "CATALOG_SIZE") || !strings.Contains(err.Error(), "USERS") {
		t.Errorf("joined errors: %v", err)
	}
	if _, err := New(DefaultConfig(), "", "p"); err == nil {
		t.Error("New accepted an empty stream")
	}
}

func TestParseDeviceMix(t *testing.T) {
	m, err := ParseDeviceMix(" tv:3 , mobile:1,")
	if err != nil {
		t.Fatal(err)
	}
	if m != (DeviceMix{0.75, 0.25, 0, 0}) {
		t.Fatalf("got %v", m)
	}
	m, err = ParseDeviceMix(DefaultConfig().DeviceMix)
	if err != nil || math.Abs(m[devTV]-0.72) > 1e-12 || math.Abs(m[devTablet]-0.05) > 1e-12 {
		t.Fatalf("default mix %v, %v", m, err)
	}
}

func TestDailyFactor(t *testing.T) {
	c := DefaultConfig()
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if f := c.DailyFactor(day.Add(21 * time.Hour)); f != 1 {
		t.Fatalf("profile off: %v", f)
	}
	c.DailyProfile = true
	at := func(h float64) float64 { return c.DailyFactor(day.Add(time.Duration(h * float64(time.Hour)))) }
	if math.Abs(at(21)-1.7) > 1e-9 || math.Abs(at(4)-0.3) > 1e-9 {
		t.Fatalf("peak %v trough %v", at(21), at(4))
	}
	sum, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
	for m := range 24 * 60 {
		f := at(float64(m) / 60)
		sum += f
		lo, hi = min(lo, f), max(hi, f)
	}
	if mean := sum / (24 * 60); math.Abs(mean-1) > 1e-3 || lo < 0.3-1e-9 || hi > 1.7+1e-9 {
		t.Fatalf("mean %v, range %v..%v", mean, lo, hi)
	}
	// Offset and a compressed day: with a 1 h period and UTC+2, local
	// 21:00 is at 19/24 of an hour after midnight UTC.
	c.DailyPeriod, c.DailyUTCOffset = time.Hour, 2
	if f := c.DailyFactor(day.Add(time.Hour * 19 / 24)); math.Abs(f-1.7) > 1e-6 {
		t.Fatalf("compressed peak %v", f)
	}
	s, err := New(c, "s", "p")
	if err != nil {
		t.Fatal(err)
	}
	s.SetRate(100)
	if r := s.Rate(day.Add(time.Hour * 19 / 24)); math.Abs(r-170) > 1e-3 {
		t.Fatalf("Rate at peak %v", r)
	}
}

func TestTitleDuration(t *testing.T) {
	episodes := 0
	for n := 1; n <= 10000; n++ {
		d, ok := TitleDuration(movieID(n, 4))
		if !ok {
			t.Fatalf("rank %d: not ok", n)
		}
		switch {
		case d >= 22*time.Minute && d <= 60*time.Minute:
			episodes++
		case d >= 90*time.Minute && d <= 150*time.Minute:
		default:
			t.Fatalf("rank %d: duration %s", n, d)
		}
	}
	if episodes < 6700 || episodes > 7300 {
		t.Fatalf("%d episodes in 10000 titles, want ~70%%", episodes)
	}
	for _, bad := range []string{"", "m", "x12", "m0", "m-3", "mabc"} {
		if _, ok := TitleDuration(bad); ok {
			t.Errorf("TitleDuration(%q) ok", bad)
		}
	}
	s, _ := New(DefaultConfig(), "s", "p")
	if _, ok := s.TitleDuration("m2000"); !ok {
		t.Error("m2000 not in the default catalogue")
	}
	if _, ok := s.TitleDuration("m2001"); ok {
		t.Error("m2001 in the default catalogue")
	}
}
