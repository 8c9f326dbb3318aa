package sim

import (
	"math"
	"time"
)

// Daily profile (reference: the peak hour carries about 1.7x the average,
// Cisco VNI; evening peak around 21:00, trough around 04:00; the curve's
// shape is a model choice): a half cosine rising from 0.3 at 04:00 to 1.7 at
// 21:00 over 17 hours, and another falling back over the 7 hours to 04:00.
// Each half averages 1, so the daily mean is exactly 1.
const (
	dailyPeak   = 1.7
	dailyTrough = 0.3
	peakHour    = 21.0
	troughHour  = 4.0
)

// dailyFactorHour is the profile at local hour h ∈ [0, 24).
func dailyFactorHour(h float64) float64 {
	amp := (dailyPeak - dailyTrough) / 2
	mid := (dailyPeak + dailyTrough) / 2
	x := math.Mod(h-troughHour+24, 24) // hours since the trough
	rise := peakHour - troughHour
	if x < rise {
		return mid - amp*math.Cos(math.Pi*x/rise)
	}
	return mid + amp*math.Cos(math.Pi*(x-rise)/(24-rise))
}

// DailyFactor returns the daily profile's multiplier of the average rate at
// t: 1 when DAILY_PROFILE is off, else between 0.3 (04:00 local) and 1.7
// (21:00 local), where local time is UTC + DAILY_UTC_OFFSET hours and one
// day lasts DAILY_PERIOD.
func (c Config) DailyFactor(t time.Time) float64 { return c.dailyFactorAt(t.UnixNano()) }

func (c Config) dailyFactorAt(t int64) float64 {
	if !c.DailyProfile || c.DailyPeriod <= 0 {
		return 1
	}
	p := int64(c.DailyPeriod)
	off := int64(c.DailyUTCOffset) * p / 24
	ph := ((t+off)%p + p) % p
	return dailyFactorHour(24 * float64(ph) / float64(p))
}
