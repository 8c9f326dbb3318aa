package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Notifier tells an Alertmanager-compatible receiver about the alerts:
// POST of a JSON array of {labels, annotations, startsAt, endsAt,
// generatorURL}, Alertmanager's /api/v2/alerts. Like Prometheus it sends
// every firing alert again each ResendEvery with endsAt four periods
// ahead (so that Alertmanager resolves them itself if the fan-out goes
// away), and a resolved alert with its endsAt once.
//
// It holds the latest state, not a queue: a slow or absent receiver costs
// one pending request and at most MaxResolved resolved alerts, and gets
// the current state when it comes back.
type Notifier struct {
	opts    NotifierOptions
	mu      sync.Mutex
	firing  []Alert
	resolve []Alert // resolved since the last post that went through
	wake    chan struct{}
}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	URL         string            // the receiver, e.g. http://alertmanager:9093/api/v2/alerts
	ResendEvery time.Duration     // default 1m
	Timeout     time.Duration     // of one request; default 10s
	MaxResolved int               // resolved alerts held for a receiver that is down; default 1000
	Labels      map[string]string // added to every alert, e.g. cluster; default none
	Client      *http.Client      // default: a client with Timeout
	Log         *slog.Logger      // default: discard
	// Result is called after each post with "ok", "refused" (a 4xx: the
	// payload will not be retried) or "error"; default none.
	Result func(result string)
}

// NewNotifier returns a Notifier; Run delivers.
func NewNotifier(o NotifierOptions) *Notifier {
	if o.ResendEvery <= 0 {
		o.ResendEvery = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxResolved <= 0 {
		o.MaxResolved = 1000
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Result == nil {
		o.Result = func(string) {}
	}
	return &Notifier{opts: o, wake: make(chan struct{}, 1)}
}

// Update gives the notifier an evaluation's result; a change is sent at
// once, the rest at the next resend.
func (n *Notifier) Update(active []Alert, changes []Change) {
	n.mu.Lock()
	n.firing = n.firing[:0]
	for _, a := range active {
		if a.State == Firing {
			n.firing = append(n.firing, a)
		}
	}
	for _, c := range changes {
		if c.State == Resolved {
			n.resolve = append(n.resolve, c.Alert)
		}
	}
	if over := len(n.resolve) - n.opts.MaxResolved; over > 0 {
		n.resolve = append(n.resolve[:0], n.resolve[over:]...)
	}
	n.mu.Unlock()
	if len(changes) > 0 {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
}

// Run posts on every change and every ResendEvery until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	t := time.NewTicker(n.opts.ResendEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
		n.post(ctx, time.Now())
	}
}

// amAlert is one alert as Alertmanager's API takes it.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (n *Notifier) payload(now time.Time) (body []byte, resolved int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []amAlert
	add := func(a Alert, ends time.Time) {
		l := map[string]string{"alertname": a.Rule, "severity": a.Severity, "metric": string(a.Metric)}
		if a.Stream != "" {
			l["stream"] = a.Stream
		}
		for k, v := range n.opts.Labels {
			l[k] = v
		}
		out = append(out, amAlert{Labels: l, Annotations: map[string]string{"summary": a.Summary()}, StartsAt: a.ActiveAt, EndsAt: ends})
	}
	for _, a := range n.firing {
		add(a, now.Add(4*n.opts.ResendEvery))
	}
	for _, a := range n.resolve {
		add(a, a.ResolvedAt)
	}
	if len(out) == 0 {
		return nil, 0
	}
	b, err := json.Marshal(out)
	if err != nil {
		n.opts.Log.Error("alerts not encoded for the webhook", "err", err)
		return nil, 0
	}
	return b, len(n.resolve)
}

func (n *Notifier) post(ctx context.Context, now time.Time) {
	body, resolved := n.payload(now)
	if body == nil {
		return
	}
	result := "error"
	defer func() { n.opts.Result(result) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.opts.URL, bytes.NewReader(body))
	if err != nil {
		n.opts.Log.Warn("alert webhook", "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		n.opts.Log.Warn("alert webhook unreachable, sending again at the next change or resend", "url", n.opts.URL, "err", err)
		return
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		result = "ok"
	case resp.StatusCode/100 == 4:
		result = "refused"
		n.opts.Log.Error("alert webhook refused the alerts", "url", n.opts.URL, "status", resp.StatusCode, "body", string(msg))
	default:
		n.opts.Log.Warn("alert webhook failed, sending again at the next change or resend", "url", n.opts.URL, "status", resp.StatusCode)
		return
	}
	// Delivered (or never will be): forget the resolved alerts sent.
	n.mu.Lock()
	n.resolve = append(n.resolve[:0], n.resolve[min(resolved, len(n.resolve)):]...)
	n.mu.Unlock()
}
