package aggregate

// NewMerged returns an Aggregator fed by partials (ApplyPartial) instead of
// records: the merge mode of the fan-out. Its Snapshot, QoE, Streams and
// ConcurrentViewers answer as the single-process fan-out's would over the
// same records.
func NewMerged(opts Options) *Aggregator { panic("todo") }

// ApplyPartial merges one record of the aggregates topic. A partial with
// the key of one applied before replaces it. A bad value is an error (the
// caller counts and skips it); a partial older than the window is ignored.
func (a *Aggregator) ApplyPartial(key, value []byte) error { panic("todo") }
