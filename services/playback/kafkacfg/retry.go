package kafkacfg

import (
	"context"
	"time"
)

// Retry calls attempt until it succeeds or ctx ends, waiting 0.5 s after
// the first failure and doubling up to 10 s: services start while Kafka is
// down and connect when it comes, without hammering it meanwhile. failed
// hears of each failure and the wait before the next attempt (for a
// rate-limited log line and readiness).
func Retry(ctx context.Context, attempt func() error, failed func(err error, wait time.Duration)) error {
	wait := 500 * time.Millisecond
	for {
		err := attempt()
		if err == nil {
			return nil
		}
		failed(err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}
