package ops

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Main is what every service's main does once its configuration is loaded
// (a bad value has already exited 2): build the service with newApp, run
// it until SIGINT or SIGTERM, and on an error log it and exit 1. One copy,
// so that the four services start and stop alike.
func Main[R any, A interface{ Run(context.Context) error }](name string, log *slog.Logger, resolved R, newApp func(R) (A, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := newApp(resolved)
	if err == nil {
		err = a.Run(ctx)
	}
	if err != nil {
		log.Error(name+" failed", "err", err)
		stop()
		os.Exit(1)
	}
}
