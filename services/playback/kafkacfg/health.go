package kafkacfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/ratelog"
)

// Health is where a service's Kafka clients report how connecting goes, so
// that every service shows a failure the same way: explained (Explain),
// counted by reason (playpulse_kafka_errors_total{reason}), logged at most
// once per 10 s per place and reason with what to fix, and kept for /readyz
// until a success clears it. A nil *Health only explains.
type Health struct {
	cfg    Config
	warn   *ratelog.Logger
	errors *prometheus.CounterVec
	last   atomic.Pointer[error]
}

// NewHealth returns the service's one Health; it registers
// playpulse_kafka_errors_total on reg (nil: none).
func (c *Config) NewHealth(log *slog.Logger, reg prometheus.Registerer) *Health {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Health{cfg: *c, warn: ratelog.New(log, 10*time.Second),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_kafka_errors_total",
			Help: "Failed Kafka connection attempts and requests, by reason (docs/operations.md, \"What failures look like\").",
		}, []string{"reason"})}
	for _, r := range Reasons() {
		h.errors.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(h.errors)
	}
	return h
}

// Failed records a failure of where (a short fixed name: "connect",
// "probe"), logs msg with the explained error and args at a bounded rate,
// and returns the explained error for the caller's readiness.
func (h *Health) Failed(where, msg string, err error, args ...any) error {
	if h == nil {
		return err
	}
	err = h.cfg.Explain(err)
	reason := ReasonOf(err)
	h.errors.WithLabelValues(reason).Inc()
	h.last.Store(&err)
	h.warn.Warn(where+":"+reason, msg, append(args, "reason", reason, "err", err.Error())...)
	return err
}

// OK records a success: Err is nil until the next failure.
func (h *Health) OK() {
	if h != nil {
		h.last.Store(nil)
	}
}

// Err is the last failure since the last success, explained.
func (h *Health) Err() error {
	if h == nil {
		return nil
	}
	if e := h.last.Load(); e != nil {
		return *e
	}
	return nil
}

// Explain is Config.Explain; on a nil *Health it returns err.
func (h *Health) Explain(err error) error {
	if h == nil {
		return err
	}
	return h.cfg.Explain(err)
}

// Probe asks Kafka for its broker list every interval with a client of its
// own, reporting to a Health, so that the readiness of a service whose
// other Kafka traffic is occasional (the controller in Kafka admin mode)
// says whether Kafka can be reached with its credentials, and if not, why.
// Its connections are made again after a failure, with the credential files
// as they are then.
type Probe struct {
	sc      sarama.Config
	brokers []string
	every   time.Duration
	h       *Health
	probed  atomic.Bool
}

// NewProbe returns a Probe of the brokers with the connection settings of
// sc (copied, with short timeouts and no retries: a probe answers at once).
func NewProbe(sc *sarama.Config, brokers []string, h *Health, every time.Duration) *Probe {
	c := *sc
	c.Net.DialTimeout = min(c.Net.DialTimeout, 5*time.Second)
	c.Net.ReadTimeout = min(c.Net.ReadTimeout, 5*time.Second)
	c.Net.WriteTimeout = min(c.Net.WriteTimeout, 5*time.Second)
	c.Metadata.Retry.Max = 0
	c.Metadata.Full = false
	c.Metadata.RefreshFrequency = 0
	return &Probe{sc: c, brokers: brokers, every: every, h: h}
}

// Run probes until ctx ends.
func (p *Probe) Run(ctx context.Context) error {
	var client sarama.Client
	defer func() {
		if client != nil {
			_ = client.Close()
		}
	}()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		var err error
		if client == nil {
			client, err = sarama.NewClient(p.brokers, &p.sc)
		}
		if err == nil {
			err = client.RefreshMetadata()
		}
		if err == nil && len(client.Brokers()) == 0 {
			err = errors.New("the metadata lists no brokers")
		}
		if err != nil {
			p.h.Failed("probe", "Kafka cannot be reached", err, "brokers", p.brokers)
			if client != nil {
				_ = client.Close() // connect anew, with the files as they will be
				client = nil
			}
		} else {
			p.h.OK()
		}
		p.probed.Store(true)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Ready is nil once Kafka answered the last probe.
func (p *Probe) Ready() error {
	if !p.probed.Load() {
		return errors.New("Kafka not probed yet")
	}
	if err := p.h.Err(); err != nil {
		return fmt.Errorf("Kafka at %v: %w", p.brokers, err)
	}
	return nil
}
