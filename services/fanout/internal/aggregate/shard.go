package aggregate

import (
	"time"

	"playpulse.dev/services/fanout/internal/consume"
)

// Shard is the aggregator role's state for one partition of a raw topic:
// the partition's sessions, exact and local, and the per-second partials
// of its figures, published to the aggregates topic.
type Shard struct {
	topic string
	part  int32
	agg   *Aggregator
}

// ShardOptions configure a Shard.
type ShardOptions struct {
	// PublishFrom is the offset of the first record the previous owner of
	// the partition did not cover by a published partial (the committed
	// offset). The seconds of records from it on are published; earlier
	// records only rebuild the sessions. Default 0: publish everything.
	PublishFrom int64
	// Lateness is how long after a second ends (by the clock, or by the
	// partition's newest record while it replays) its partial is
	// published. Later records republish it. Default 100 ms.
	Lateness time.Duration
	// Aggregator configures the sessions (MaxSessions, SessionTimeout,
	// MaxStreams, Now); Registerer and Export are ignored.
	Aggregator Options
}

// NewShard returns the state of one partition.
func NewShard(topic string, partition int32, opts ShardOptions) *Shard {
	panic("todo")
}

// AddBatch takes records of this partition, in order.
func (s *Shard) AddBatch(rs []consume.Record) { panic("todo") }

// Flush calls emit with the key and value of every partial that is due:
// seconds that closed since the last Flush, and published seconds that
// changed since (late records, sessions expired into them). Call it about
// every 100 ms, and with the records of one partition, from one goroutine.
func (s *Shard) Flush(now time.Time, emit func(key, value []byte)) { panic("todo") }

// Committable is the offset to commit once the partials emitted so far are
// acknowledged: every record before it is in a published partial.
func (s *Shard) Committable() int64 { panic("todo") }

// PartialKey is the aggregates topic key of a partial: one per raw topic,
// partition and second, so a republished partial replaces the old one.
func PartialKey(topic string, partition int32, sec int64) []byte { panic("todo") }
