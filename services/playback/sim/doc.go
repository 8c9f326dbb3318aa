// Package sim simulates video viewing sessions and turns them into Playpulse
// events: the producer, tests and benchmarks all use it.
//
// # Pacing
//
// The caller is a pacer: it calls Next exactly rate times per second of wall
// time, passing the wall clock, and every event is stamped with that time
// (ts = now). Positions, startup_ms and stall_ms are computed from those
// stamps, so each event agrees with its timestamp. The simulator keeps a
// population of sessions, each with one planned next event, in a calendar
// queue by due time (no goroutine per session), and sizes the population so
// that about as many events fall due as Next is called:
//
//	live sessions ≈ 0.95 · rate · T / N      arrivals λ = 0.95 · rate / N
//
// where N (≈127 events) and T (≈19.3 min) are the mean events and duration
// of a session, measured once per configuration by a pilot run of 2000
// isolated sessions. With the defaults a live session emits an event every
// ~9 s, so 10,000 events/s need ~86,000 live sessions. Feedback keeps the
// population on target: Poisson arrivals are dropped above target+5%, and
// below target-5% a call that finds nothing due starts a session (fast
// ramp-up after start or a rate increase: ~70 s to reach the target, with
// starts per second well above the steady ~75/s at 10,000 events/s meanwhile).
// A call that finds nothing due otherwise gets a filler: the session with
// the earliest planned event sends a heartbeat now and keeps its plan. An
// event overdue by more than 3 heartbeat intervals + 10/rate (the rate was
// cut a lot, or the caller paused) ends its session (stop quit or what the
// state allows), so the population drains at the new rate. See Sim.Next and
// Stats. The number of live sessions never exceeds MAX_SESSIONS, nor about
// 1.05 × the target for the highest rate recently set.
//
// # Model
//
// A session starts (start, seq 1) on a title drawn by Zipf(ZIPF_ALPHA) over
// CATALOG_SIZE titles; title mN has popularity rank N and a duration fixed
// by N (TitleDuration): 70% episodes of 22-60 min, 30% films of 90-150 min.
// 20% of views resume mid-title. Device, network, country and CDN follow
// fixed shares; DEVICE_MIX is a share of viewing time, so start attempts per
// device are proportional to share / mean play time (with the defaults: TV
// 51%, mobile 28%, desktop 14%, tablet 6% of attempts).
//
// Startup: with probability START_FAILURE_RATE a fatal error (with a code)
// comes 0.5-4 s after the start, then stop reason error. Otherwise the
// startup time is lognormal per device (median TV 1.5 s, mobile 2.5 s,
// desktop 1.8 s, tablet 2.0 s; p95 6-8 s); the viewer waits at least 2 s and
// then abandons with a constant hazard (Krishnan & Sitaraman: abandonment
// starts after 2 s and grows with every second), calibrated so that
// EXIT_BEFORE_START_RATE of attempts end with stop exit_before_start; else
// the first frame comes (play with startup_ms) at a ladder rung 2-3 below
// what the network sustains.
//
// Playback: the viewer intends to play a lognormal time (σ 0.8), calibrated
// per device so that the mean play time per played view is MEAN_WATCH_TIME
// (TV 1.45×, mobile 0.45×, desktop 0.8×, tablet 0.9× of the reference's
// 20 min, rescaled); the view ends with stop ended at the title's end (≈21%
// of played views), or with stop quit (a quarter of quitters pause first).
// Meanwhile heartbeats (every HEARTBEAT_INTERVAL without other events, also
// while paused or stalled), pauses (one per 20 min of play, lognormal median
// 30 s), seeks (one per 15 min, 65% forward), ABR upshifts towards the
// network's rung and occasional downshifts (Netflix ladder 235-5800 kbps),
// non-fatal errors, fatal errors (PLAYBACK_ERROR_RATE of played views; then
// stop error) and stalls: buffer_start/buffer_end with stall_ms, lognormal
// median 2 s, only while playing; stall frequency is derived from
// REBUFFER_RATIO (with the defaults 4.8 per play hour on TV), mobile 2×,
// desktop 1.2×, tablet 1.5× TV, varying per session (lognormal σ 1, bad
// networks stall far more); 70% of stalls are followed by a downshift; a
// viewer whose patience (median 30 s) runs out quits during the stall.
//
// # Defaults and sources
//
// From /work/shared/reference/playback-qoe.md:
//
//	CATALOG_SIZE=2000, ZIPF_ALPHA=0.9      Zipf α 0.8-1.2 for video (Cha et al., IMC 2007)
//	DEVICE_MIX=tv:0.72,mobile:0.12,...     share of viewing time, Conviva 2020-2022
//	MEAN_WATCH_TIME=20m                    Conviva Q2 2022 (TV 29 min, mobile 9 min)
//	START_FAILURE_RATE=0.02                1-3% of attempts (Conviva 2013-2014)
//	REBUFFER_RATIO=0.005                   industry 0.3-1% (Conviva Q2 2018: 0.78%)
//	HEARTBEAT_INTERVAL=10s                 CMCD's default is 30 s; 10 s so dashboards move
//	DAILY_PROFILE=false, DAILY_PERIOD=24h  peak 1.7× average at 21:00 (Cisco VNI), trough 04:00
//
// Model choices: EXIT_BEFORE_START_RATE=0.05, PLAYBACK_ERROR_RATE=0.005,
// USERS=200000, MAX_SESSIONS=500000, DAILY_UTC_OFFSET=0, SEED=0 (random;
// Sim.Seed reports it). A given seed and session prefix (the producer's
// instance id) with the same sequence of Next times reproduce the events
// byte for byte. The prefix is part of the random source, so processes that
// share a seed, as the replicas of one PlaybackStream do, simulate different
// viewers instead of repeating each other.
//
// TestStatistics checks the measured rates against these values; see its
// comment for the tolerances.
package sim
