package sessionize

import (
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/collector/internal/cmcd"
)

type metrics struct {
	reports       prometheus.Counter
	dropped       *prometheus.CounterVec // reason
	gaps          prometheus.Counter
	ended         *prometheus.CounterVec // why: inactivity, evicted
	events        prometheus.Counter
	badIntake     *prometheus.CounterVec
	txns          *prometheus.CounterVec // committed, aborted
	commitSeconds prometheus.Histogram
	rebuilds      prometheus.Counter
	replayed      prometheus.Counter
	ticks         prometheus.Counter
	partitions    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, s *Sessionizer) *metrics {
	m := &metrics{
		reports: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_reports_total",
			Help: "Intake reports applied by this process's partitions (replays of a rebuild not counted)."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_reports_dropped_total",
			Help: "Reports that produced nothing, by reason: duplicate (sn already applied: a retried POST), after_stop (the session had ended; Shaka keeps reporting after a fatal error), not_represented (an error while paused)."}, []string{"reason"}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_sn_gaps_total",
			Help: "Report sequence numbers given up on after COLLECTOR_REORDER_WINDOW (lost reports)."}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_sessions_ended_total",
			Help: "Sessions the collector stopped itself, by why: inactivity (COLLECTOR_INACTIVITY_TIMEOUT), evicted (COLLECTOR_MAX_SESSIONS)."}, []string{"why"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_events_total",
			Help: "Contract events written (in committed or aborted transactions; an aborted one's are written again)."}),
		badIntake: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_bad_intake_total",
			Help: "Intake records skipped, by reason (not written by a collector edge of this version)."}, []string{"reason"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_transactions_total",
			Help: "Kafka transactions by result: committed, aborted (then the partition is rebuilt from its committed offset)."}, []string{"result"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "playpulse_collector_sessionizer_commit_seconds",
			Help: "Time to add the offsets to a transaction and commit it.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 12)}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_rebuilds_total",
			Help: "Partition rebuilds (on assignment and after an aborted transaction)."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_replayed_total",
			Help: "Intake records replayed by rebuilds (emitting nothing)."}),
		ticks: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_sessionizer_ticks_total",
			Help: "Tick records written into quiet owned partitions so that their sessions' time moves on."}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "playpulse_collector_sessionizer_partitions",
			Help: "Intake partitions this process owns."}),
	}
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "playpulse_collector_sessionizer_sessions_live",
		Help: "Live sessions held by this process's partitions."}, func() float64 { l, _ := s.sessionsHeld(); return l })
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "playpulse_collector_sessionizer_sessions_held",
		Help: "Sessions held, live and recently stopped (bounded by COLLECTOR_MAX_SESSIONS per partition)."}, func() float64 { _, a := s.sessionsHeld(); return a })
	reg.MustRegister(m.reports, m.dropped, m.gaps, m.ended, m.events, m.badIntake, m.txns, m.commitSeconds, m.rebuilds, m.replayed, m.ticks, m.partitions, live, held)
	for _, r := range []string{"duplicate", "after_stop", "not_represented"} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{"inactivity", "evicted"} {
		m.ended.WithLabelValues(r)
	}
	for _, r := range append(cmcd.Reasons(), "headers") {
		m.badIntake.WithLabelValues(r)
	}
	m.txns.WithLabelValues("committed")
	m.txns.WithLabelValues("aborted")
	return m
}
