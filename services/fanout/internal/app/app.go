// Package app builds the fan-out from its resolved configuration and runs
// it: consume → aggregate and hub → web, and the ops endpoints beside the
// dashboard. FANOUT_ROLE picks what is built (docs/tier.md): single (all of
// it), aggregator (tier.Aggregator and the ops endpoints only) or merge
// (the partials of the aggregates topic → aggregate and hub → web).
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/alert"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/tier"
	"playpulse.dev/services/fanout/internal/web"
	"playpulse.dev/services/fanout/pkg/config"
	"playpulse.dev/services/playback/ops"
)

// App is one fan-out process.
type App struct {
	cfg config.Resolved
	ops *ops.Server
	// src is where the figures come from: the raw topics (role single) or
	// the aggregates topic (role merge); nil in role aggregator.
	src interface {
		Status() consume.Status
		Ready() error
	}
	run  func(ctx context.Context) error // consumes src until ctx ends
	tier *tier.Aggregator                // role aggregator only
	// history serves /api/history; role merge only.
	history *tier.History
	agg     *aggregate.Aggregator
	hub     *hub.Hub
	rate    prometheus.Gauge

	// Alerts: nil without rules. The evaluator and the source are used by
	// the alerts goroutine only; the others read its result, encoded.
	live    *alert.Live
	eval    *alert.Evaluator
	notify  *alert.Notifier // nil without FANOUT_ALERT_WEBHOOK
	reloads *prometheus.CounterVec
	// active is the last evaluation's pending and firing alerts, encoded
	// once there: every snapshot and /api/alerts carry the same bytes.
	active atomic.Pointer[[]byte]

	smu    sync.Mutex
	scoped map[scopedKey]scopedSnap // /api/snapshot?source=, at most 2 per source
}

type scopedKey struct {
	source string
	full   bool
}

type scopedSnap struct {
	at  time.Time
	raw []byte
}

// errSource answers /api/… with an unknown source.
var errSource = errors.New("source must be one of " + strings.Join(aggregate.Sources(), ", "))

// New builds a fan-out; it touches neither the network nor the disk.
func New(cfg config.Resolved) (*App, error) {
	log := cfg.Log
	o := ops.NewServer(log)
	reg := o.Registry()
	s := &App{cfg: cfg, ops: o, scoped: map[scopedKey]scopedSnap{}}
	aggOpts := aggregate.Options{
		MaxSessions: cfg.MaxSessions, SessionTimeout: cfg.SessionTimeout, MaxStreams: cfg.MaxStreams,
		Registerer: reg, Log: log,
		// The QoE counters start with the events stamped from now on: the
		// warm-up replay must not reach Prometheus as one burst.
		Export: aggregate.ExportOptions{TopCDNs: cfg.MetricsTopCDNs, TopCountries: cfg.MetricsTopCountries, CountFrom: time.Now().UnixMilli()},
	}
	if cfg.Role == config.RoleAggregator {
		// No dashboard: the figures are served by the merge-role fan-outs.
		// Every owned partition keeps up to FANOUT_MAX_SESSIONS sessions.
		s.tier = tier.NewAggregator(cfg.Sarama, cfg.Brokers, tier.AggregateOptions{
			Topics: cfg.Topics, Pattern: cfg.Pattern, Refresh: cfg.DiscoveryInterval, Group: cfg.Group,
			AggregatesTopic: cfg.AggregatesTopic, Replay: cfg.AggregatorReplay, Warmup: cfg.Warmup,
			TailTopic: cfg.TailTopic, FiltersTopic: cfg.FiltersTopic, SampleRate: float64(cfg.TailSampleRate),
			Shard: aggregate.Options{MaxSessions: cfg.MaxSessions, SessionTimeout: cfg.SessionTimeout, MaxStreams: cfg.MaxStreams, Log: log},
			Log:   log, Registerer: reg, Health: cfg.NewHealth(log, reg),
		})
		o.AddReadiness("kafka", s.tier.Ready)
		return s, nil
	}
	if cfg.Role == config.RoleMerge {
		s.agg = aggregate.NewMerged(aggOpts)
	} else {
		s.agg = aggregate.New(aggOpts)
	}
	s.hub = hub.New(hub.Options{
		TailRate: cfg.TailRate, FrameHz: cfg.FrameHz, MaxFrameHz: cfg.MaxFrameHz, FrameBudget: cfg.FrameBudget, SnapshotHz: cfg.SnapshotHz, WriteTimeout: cfg.WriteTimeout,
		RingSize: cfg.TailBuffer, ResumeWindow: cfg.ResumeWindow, NoDelta: !cfg.SnapshotDelta,
		Full: func() []byte { return s.snapshot(time.Now(), true, "") },
		Log:  log, Registerer: reg,
	})
	if cfg.Role == config.RoleMerge {
		// The partials of the whole window the Aggregator holds; the live
		// tail from the events the aggregators forward (a sample of each
		// stream, and every event of the users and titles this fan-out's
		// browsers filter on, which it announces to them).
		m := tier.NewMerger(cfg.Sarama, cfg.Brokers, tier.MergeOptions{
			Topic: cfg.AggregatesTopic, Since: aggregate.Window, Refresh: cfg.DiscoveryInterval, StaleAfter: cfg.StaleAfter,
			Apply: s.agg.ApplyPartial, Log: log, Registerer: reg, Health: cfg.NewHealth(log, reg),
		})
		s.history = tier.NewHistory(cfg.Sarama, cfg.Brokers, tier.HistoryOptions{
			Topic: cfg.AggregatesTopic, RollupsTopic: cfg.RollupsTopic, Margin: cfg.HistoryMargin, Aggregate: aggregate.Options{MaxStreams: cfg.MaxStreams}, Log: log, Registerer: reg,
		})
		s.src = m
		var rollups *tier.Rollups
		if cfg.RollupsTopic != "" {
			rollups = tier.NewRollups(cfg.Sarama, cfg.Brokers, tier.RollupOptions{
				Topic: cfg.RollupsTopic, From: time.Now().Add(-aggregate.Window), Rollup: s.agg.Rollup, Ready: m.Ready,
				Log: log.With("writer", "rollups"), Registerer: reg,
			})
		}
		var tail *consume.Consumer
		if cfg.TailTopic != "" {
			tail = consume.New(cfg.Sarama, cfg.Brokers, consume.Options{
				Topics: []string{cfg.TailTopic}, Warmup: cfg.ResumeWindow, Refresh: cfg.DiscoveryInterval, StaleAfter: cfg.StaleAfter,
				// No Registerer: the aggregates topic's reader has the
				// consumer's metric names; the hub counts the tail's events.
				OnPartition: s.hub.PartitionStarted, Log: log.With("reader", "tail"),
			})
		}
		s.run = func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var wg sync.WaitGroup
			if rollups != nil {
				wg.Add(1)
				go func() { defer wg.Done(); _ = rollups.Run(ctx) }()
			}
			if tail != nil {
				wg.Add(2)
				go func() { defer wg.Done(); _ = tail.Run(ctx, s.hub.PublishBatch) }()
				go func() {
					defer wg.Done()
					tier.Announce(ctx, cfg.Sarama, cfg.Brokers, tier.AnnounceOptions{Topic: cfg.FiltersTopic, Instance: instance(), Narrow: s.hub.Narrow, Log: log})
				}()
			}
			err := m.Run(ctx)
			cancel()
			wg.Wait()
			return err
		}
	} else {
		c := consume.New(cfg.Sarama, cfg.Brokers, consume.Options{
			Topics: cfg.Topics, Pattern: cfg.Pattern, Warmup: cfg.Warmup, Refresh: cfg.DiscoveryInterval, StaleAfter: cfg.StaleAfter,
			OnPartition: s.hub.PartitionStarted, Log: log, Registerer: reg, Health: cfg.NewHealth(log, reg),
		})
		s.src = c
		s.run = func(ctx context.Context) error {
			return c.Run(ctx, func(rs []consume.Record) {
				s.agg.AddBatch(rs)
				s.hub.PublishBatch(rs)
			})
		}
	}
	s.rate = prometheus.NewGauge(prometheus.GaugeOpts{Name: "playpulse_fanout_events_per_second", Help: "Valid events per second over the last 10 complete seconds, by record timestamp."})
	reg.MustRegister(s.rate)
	o.AddReadiness("kafka", s.src.Ready)
	wo := web.Options{
		AllowedOrigins: cfg.AllowedOrigins, MaxConnections: cfg.MaxConnections, MaxConnectionsPerIP: cfg.MaxConnectionsPerIP,
		TrustedProxies: cfg.Proxies, AuthToken: cfg.Token, Streams: s.streams, SourceSnapshot: s.sourceSnapshot,
		Log: log, Registerer: reg,
	}
	if s.history != nil {
		wo.History = s.history
	}
	if cfg.AlertRules != "" {
		s.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_alert_rule_reloads_total",
			Help: "Reloads of FANOUT_ALERT_RULES after it changed, by result: ok, or error (the rules in effect stay; the log says why).",
		}, []string{"result"})
		reg.MustRegister(s.reloads)
		s.live = alert.NewLive(s.agg, cfg.Rules)
		s.eval = alert.NewEvaluator(s.live, cfg.Rules)
		if cfg.RulesAwaited {
			log.Warn("alert rules file not there yet: no rules until it appears", "file", cfg.AlertRules)
		}
		wo.Alerts = func() []byte { return append(append([]byte(`{"alerts":`), s.alerts()...), '}') }
		if cfg.AlertWebhook != "" {
			sent := prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "playpulse_fanout_alert_notifications_total",
				Help: "Posts of the alerts to FANOUT_ALERT_WEBHOOK, by result: ok, refused (4xx, not retried), error (sent again at the next change or resend).",
			}, []string{"result"})
			reg.MustRegister(sent)
			s.notify = alert.NewNotifier(alert.NotifierOptions{URL: cfg.AlertWebhook, Log: log, Result: func(r string) { sent.WithLabelValues(r).Inc() }})
		}
	}
	web.Mount(o, s.hub, wo)
	return s, nil
}

// Run listens on FANOUT_ADDR, consumes and serves until ctx ends, then
// closes every WebSocket with 1001 and stops.
func (s *App) Run(ctx context.Context) error {
	ln, err := ops.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	s.cfg.Log.Info("fanout starting", "role", s.cfg.Role, "addr", ln.Addr().String(), "topics", s.cfg.Topics, "pattern", s.cfg.TopicPattern, "brokers", s.cfg.Brokers)
	if s.tier != nil {
		return s.runAggregator(ctx, ln)
	}
	// A consumer that cannot work (its client closed under it) stops the
	// whole fan-out: serving dashboards that never move would hide it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		consErr <- s.run(ctx)
		cancel()
	}()
	go func() { defer wg.Done(); s.snapshots(ctx) }()
	if s.eval != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.evaluate(ctx) }()
	}
	if s.notify != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.notify.Run(ctx) }()
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.ops.Serve(ctx, ln) }()
	<-ctx.Done()
	s.hub.Close()
	err = <-httpErr
	wg.Wait()
	if s.history != nil {
		_ = s.history.Close()
	}
	if cerr := <-consErr; cerr != nil {
		return cerr
	}
	return err
}

// runAggregator runs the aggregator role: the tier and the ops endpoints.
func (s *App) runAggregator(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tierErr := make(chan error, 1)
	go func() {
		tierErr <- s.tier.Run(ctx)
		cancel() // a tier that cannot work stops the process
	}()
	err := s.ops.Serve(ctx, ln)
	cancel()
	if terr := <-tierErr; terr != nil {
		return terr
	}
	return err
}

// snapshot computes one snapshot, of every event or of one event source
// (a valid name: see sourceSnapshot), with the Kafka source state, and
// encodes it.
func (s *App) snapshot(now time.Time, full bool, source string) []byte {
	st := s.src.Status()
	if st.State == consume.StateStale {
		s.agg.SetStale(st.Since)
	} else {
		s.agg.SetStale(time.Time{})
	}
	var snap *aggregate.Snapshot
	if source == "" {
		snap = s.agg.Snapshot(now, full)
		if !full {
			s.rate.Set(float64(snap.EventsPerSec))
		}
	} else {
		snap, _ = s.agg.SourceSnapshot(now, full, source)
	}
	if s.eval != nil {
		snap.Alerts = s.alerts()
	}
	snap.Stale = st.State == consume.StateStale
	snap.Source = aggregate.Source{State: st.State, Since: st.Since.UnixMilli(), Message: st.Message, Partitions: st.Partitions, Lag: st.Lag}
	return snap.JSON()
}

// sourceSnapshot answers /api/snapshot?source=. Like the shared snapshots,
// each is computed at most once per snapshot interval (a full one once a
// second) whatever the request rate, so the API cannot be made to spend
// more than the WebSocket clients do.
func (s *App) sourceSnapshot(source string, full bool) ([]byte, error) {
	if _, ok := aggregate.ParseSource(source); !ok {
		return nil, errSource
	}
	ttl := time.Second / time.Duration(s.cfg.SnapshotHz)
	if full {
		ttl = time.Second
	}
	k := scopedKey{source, full}
	s.smu.Lock()
	defer s.smu.Unlock()
	now := time.Now()
	if c, ok := s.scoped[k]; ok && now.Sub(c.at) < ttl {
		return c.raw, nil
	}
	raw := s.snapshot(now, full, source)
	s.scoped[k] = scopedSnap{now, raw}
	return raw, nil
}

// streams answers /api/streams, of one source when source is not "".
func (s *App) streams(source string) (any, error) {
	if source == "" {
		return s.agg.Streams(time.Now()), nil
	}
	list, ok := s.agg.SourceStreams(time.Now(), source)
	if !ok {
		return nil, errSource
	}
	return list, nil
}

func (s *App) snapshots(ctx context.Context) {
	t := time.NewTicker(time.Second / time.Duration(s.cfg.SnapshotHz))
	defer t.Stop()
	for {
		if err := s.hub.SetSnapshot(s.snapshot(time.Now(), false, "")); err != nil {
			s.cfg.Log.Error("snapshot", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// evaluate runs the alert rules every FANOUT_ALERT_INTERVAL: it samples the
// aggregator, evaluates, publishes the active alerts for the snapshots and
// /api/alerts, and logs what fired and resolved.
func (s *App) evaluate(ctx context.Context) {
	t := time.NewTicker(s.cfg.AlertInterval)
	defer t.Stop()
	file, _ := os.Stat(s.cfg.AlertRules)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			file = s.reload(file, now)
			s.live.Sample(now)
			active, changes := s.eval.Evaluate(now)
			b := s.encode(active)
			s.active.Store(&b)
			if s.notify != nil {
				s.notify.Update(active, changes)
			}
			for _, c := range changes {
				args := []any{"rule", c.Rule, "stream", c.Stream, "severity", c.Severity, "value", c.Value, "threshold", c.Threshold}
				if x := c.Explained; x != nil {
					args = append(args, "explained", string(x.Dim)+"="+x.Value, "share", x.Share)
				}
				s.cfg.Log.Info("alert "+string(c.State), args...)
			}
		}
	}
}

// reload reads the rules file again when it changed (a ConfigMap the
// controller rewrote: the kubelet swaps the file within a minute). A file
// that does not parse is logged and counted, and the rules in effect stay.
func (s *App) reload(was os.FileInfo, now time.Time) os.FileInfo {
	fi, err := os.Stat(s.cfg.AlertRules)
	if err != nil || was != nil && fi.ModTime().Equal(was.ModTime()) && fi.Size() == was.Size() {
		return was
	}
	rules, err := alert.Load(s.cfg.AlertRules)
	if err != nil {
		s.reloads.WithLabelValues("error").Inc()
		s.cfg.Log.Error("alert rules not reloaded, the rules in effect stay", "file", s.cfg.AlertRules, "err", err)
		return fi
	}
	s.reloads.WithLabelValues("ok").Inc()
	s.eval.SetRules(rules, now)
	s.live.SetRules(rules)
	s.cfg.Log.Info("alert rules reloaded", "file", s.cfg.AlertRules, "rules", len(rules))
	return fi
}

// alerts are the active alerts of the last evaluation, encoded: a JSON
// array, empty before the first.
func (s *App) alerts() []byte {
	if b := s.active.Load(); b != nil {
		return *b
	}
	return []byte("[]")
}

// encode encodes the alerts (an empty array for none); a figure JSON
// cannot carry (the evaluator keeps NaN out, but a server must not stop
// on it) is logged and the alerts are sent as null.
func (s *App) encode(active []alert.Alert) []byte {
	if active == nil {
		active = []alert.Alert{}
	}
	b, err := json.Marshal(active)
	if err != nil {
		s.cfg.Log.Error("alerts not encoded", "err", err)
		return []byte("null")
	}
	return b
}

// instance names this process in the filters topic: the pod name (the
// host name in Kubernetes) and the process id, so two fan-outs on one
// machine do not withdraw each other's filters.
func instance() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}
