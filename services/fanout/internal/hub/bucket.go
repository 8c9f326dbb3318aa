package hub

import "time"

// bucket is a token bucket: rate tokens a second, holding at most burst.
// The tail's events a second (per phase and per client) and a client's
// messages a second are counted by one each; its owner alone uses it.
type bucket struct {
	tokens, rate, burst float64
	at                  time.Time // when tokens were last topped up
}

// newBucket returns a full bucket.
func newBucket(rate, burst float64, now time.Time) bucket {
	return bucket{tokens: burst, rate: rate, burst: burst, at: now}
}

// refill adds what accrued since the last refill.
func (b *bucket) refill(now time.Time) {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	b.at = now
}

// untilOne is how long after the last refill the bucket holds one token.
func (b *bucket) untilOne() time.Duration {
	return time.Duration(max(0, 1-b.tokens) / b.rate * float64(time.Second))
}
