package kafkacfg

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	var waits []time.Duration
	calls := 0
	err := Retry(context.Background(), func() error {
		calls++
		if calls < 3 {
			return errors.New("down")
		}
		return nil
	}, func(err error, wait time.Duration) { waits = append(waits, wait) })
	if err != nil || calls != 3 || len(waits) != 2 || waits[0] != 500*time.Millisecond || waits[1] != time.Second {
		t.Fatalf("err %v, %d calls, waits %v; want nil, 3, [500ms 1s]", err, calls, waits)
	}

	ctx, cancel := context.WithCancel(context.Background())
	err = Retry(ctx, func() error { return errors.New("down") }, func(error, time.Duration) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v, want context.Canceled", err)
	}
}
