// Package tier runs the two Kafka sides of the aggregation tier (issue 17,
// docs/tier.md): the aggregator role, which reads the raw topics in a
// consumer group and publishes per-partition, per-second partials, and the
// merge role's reader of the aggregates topic.
//
// # Aggregator
//
// The raw topics are read in one consumer group (cooperative-sticky: a
// rebalance moves only the partitions that must move), so each partition,
// and with it every session keyed into it, has exactly one owner, whose
// aggregate.Shard keeps the sessions exact and local. A partial is keyed
// per (raw topic, partition, second), so one a new owner publishes again
// replaces the old one in the merge instead of adding to it: the offsets
// are committed only after the partials covering the records before them
// are acknowledged (at least once), and a second published twice counts
// once.
//
// A new owner must rebuild the sessions before it publishes: it replays the
// partition from FANOUT_AGGREGATOR_REPLAY before the timestamp of the
// record at the committed offset (the partition's first record not in a
// published partial), and the Shard publishes only the seconds of records
// from the committed offset on (ShardOptions.PublishFrom). A group with no
// committed offset yet publishes from FANOUT_WARMUP ago, as the
// single-process fan-out's warm start shows.
//
// The claim's own partition consumer starts at the committed offset, too
// late for the replay, so each claim reads its partition with a partition
// consumer of its own, from the replay start on and without a seam, and
// the claim's is paused: a read_committed consumer never delivers the
// transaction markers, so a replay that stopped at the claim's start could
// not tell that it got there when the records before it are markers. The
// claim's Messages channel is then only the revocation signal.
//
// Concurrency: sarama runs ConsumeClaim in a goroutine per claimed
// partition; that goroutine alone owns the partition's Shard (decode,
// AddBatch, Flush, MarkOffset), so the Shard needs no lock. The shared
// pieces (the sync producer, the consumer, the metrics and the claim
// table behind Ready) are safe for concurrent use. A revoked claim's
// goroutine drops its Shard and returns at once, within the group's
// rebalance timeout: a partial it had not published is published by the
// next owner, which starts from the committed offset.
//
// # Merge
//
// Merge reads every partition of the aggregates topic from Since ago on
// (the 15 minutes a fan-out holds), with consume.Consumer in raw mode, so
// it discovers new partitions, reports its source state and readiness, and
// warm starts exactly as the single-process fan-out does.
package tier

import (
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/kafkacfg"
)

// AggregateOptions configure the aggregator role.
type AggregateOptions struct {
	Topics  []string       // raw topics to aggregate
	Pattern *regexp.Regexp // more raw topics: every topic whose whole name matches
	Refresh time.Duration  // how often to look for new topics (default 5 s)
	Group   string         // consumer group id
	// AggregatesTopic is where the partials are published.
	AggregatesTopic string
	// Replay is how far before the committed record a new owner re-reads
	// its partition, to rebuild the sessions (FANOUT_AGGREGATOR_REPLAY).
	Replay time.Duration
	// Warmup: with no committed offset, the partials start with the
	// records of the last Warmup (FANOUT_WARMUP).
	Warmup time.Duration
	// FlushEvery is how often the due partials are published and the
	// offsets they cover marked (default 100 ms).
	FlushEvery time.Duration
	// Shard configures every partition's sessions.
	Shard aggregate.Options
	// TailTopic receives the events forwarded for the merge-role
	// fan-outs' live tail: each stream's fair sample, SampleRate events a
	// second over all aggregators (default 100), and every event a filter
	// announced on FiltersTopic asks for (internal/forward). Empty: none.
	TailTopic    string
	FiltersTopic string
	SampleRate   float64

	Log        *slog.Logger
	Registerer prometheus.Registerer
	Health     *kafkacfg.Health

	// newShard makes a partition's state; tests replace it.
	newShard func(topic string, partition int32, publishFrom int64) shard
}

// shard is what the aggregator needs of an aggregate.Shard.
type shard interface {
	AddBatch([]consume.Record)
	Flush(now time.Time, emit func(key, value []byte))
	Committable() int64
}

// settled is how long a partition must deliver nothing to count as read
// to the end, although its next offset is below the high-water mark: the
// offsets left are transaction markers, never delivered (as in consume).
const settled = 3 * time.Second
