// Package ingest is the collector's HTTP edge: POST /v1/cmcd[/{stream}]
// (CMCD v2 event reports) and POST /v1/events (contract events from custom
// players and SDKs). It is stateless: the valid reports of a request
// become one Kafka record per session on the intake topic (sessionRecords),
// each valid event one record on the events topic, through a bounded
// idempotent producer.
//
// It faces the internet, so everything is bounded and nothing is trusted:
// CORS only for configured origins, body, line-count and line-length limits,
// a token bucket per client address, a bounded number of requests in
// progress, and per-line validation whose failures are answered with a
// reason, counted by reason and logged at a bounded rate; the good lines of
// a batch are kept.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/collector/internal/intake"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
	"playpulse.dev/services/playback/ratelog"
)

// Options configure an Edge.
type Options struct {
	IntakeTopic, EventsTopic string
	DefaultStream            string
	AllowedOrigins           []string // "*" allows any
	TrustedProxies           []*net.IPNet
	CountryHeader            string
	UserIDKey                string
	MaxBodyBytes             int
	MaxLines                 int
	MaxLineBytes             int
	RateLimit, RateBurst     int // reports/s per client address; 0: none
	RateAddresses            int
	MaxBuffered              int
	DeliveryTimeout          time.Duration
	TSTolerance              time.Duration
	// ValidStream says whether a path segment may name a stream.
	ValidStream func(string) bool
	// Health is where Kafka failures are explained, counted and logged.
	Health *kafkacfg.Health
	// Now is the clock (tests); nil: time.Now.
	Now        func() time.Time
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// MaxInProgress bounds the requests being handled at once; more are
// answered 503 at once, so a flood cannot pile up goroutines and buffers.
const MaxInProgress = 4096

// bodyTimeout bounds how long a client may take to send its body.
const bodyTimeout = 10 * time.Second

// Edge serves the ingest endpoints.
type Edge struct {
	opts     Options
	prod     *Producer
	lim      *limiter
	m        *metrics
	warn     *ratelog.Logger
	anyOrig  bool
	origins  map[string]bool
	slots    chan struct{}
	bufPool  sync.Pool
	msgsPool sync.Pool // beacons: one record per event
	recsPool sync.Pool // CMCD: one record per session of a request
}

// New returns an Edge writing through a producer on sc (from kafkacfg).
func New(sc *sarama.Config, brokers []string, opts Options) *Edge {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := newMetrics(opts.Registerer)
	e := &Edge{opts: opts, m: m, warn: ratelog.New(opts.Log, 10*time.Second),
		lim:     newLimiter(opts.RateLimit, opts.RateBurst, opts.RateAddresses),
		origins: map[string]bool{}, slots: make(chan struct{}, MaxInProgress)}
	e.bufPool.New = func() any { return new(bytes.Buffer) }
	e.recsPool.New = func() any { return new(sessionRecords) }
	opts.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "playpulse_collector_rate_limit_addresses",
		Help: "Client addresses whose rate is tracked (bounded by COLLECTOR_RATE_ADDRESSES)."}, func() float64 { return float64(e.lim.len()) }))
	e.prod = newProducer(sc, brokers, []string{opts.IntakeTopic, opts.EventsTopic}, opts.MaxBuffered, opts.DeliveryTimeout, opts.Log, opts.Health, m)
	for _, o := range opts.AllowedOrigins {
		if o == "*" {
			e.anyOrig = true
		}
		e.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return e
}

// Producer is the edge's bounded producer (for readiness and the app's
// shutdown order).
func (e *Edge) Producer() *Producer { return e.prod }

// Mount registers the endpoints on the ops server.
func (e *Edge) Mount(s *ops.Server) {
	s.Handle("/v1/cmcd", http.HandlerFunc(e.serveCMCD))
	s.Handle("/v1/cmcd/{stream}", http.HandlerFunc(e.serveCMCD))
	s.Handle("/v1/events", http.HandlerFunc(e.serveEvents))
}

// rejection is one refused line in a 400 answer.
type rejection struct {
	Line   int    `json:"line"` // 1-based
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// answer is the JSON body of every non-2xx answer.
type answer struct {
	Error    string      `json:"error"`
	Accepted int         `json:"accepted"`
	Rejected []rejection `json:"rejected,omitempty"`
}

func (e *Edge) reply(w http.ResponseWriter, endpoint string, code int, a answer) {
	e.m.request(endpoint, code)
	if code == http.StatusNoContent {
		w.WriteHeader(code)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// encoding/json escapes < > & in strings: a detail quoting a hostile
	// value is inert even where a client shows it.
	_ = json.NewEncoder(w).Encode(a)
}

// cors answers the preflight and sets the response headers for an allowed
// origin; it reports false (and has answered 403) for any other origin.
// Requests without Origin (native players, server-side SDKs, curl) are not
// cross-origin and pass.
func (e *Edge) cors(w http.ResponseWriter, r *http.Request, endpoint string) (ok, done bool) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true, false
	}
	if !e.anyOrig && !e.origins[strings.ToLower(origin)] {
		e.warn.Warn("origin", "cross-origin request from an origin not in COLLECTOR_ALLOWED_ORIGINS refused", "origin", truncate(origin))
		e.reply(w, endpoint, http.StatusForbidden, answer{Error: "origin not allowed"})
		return false, true
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		e.reply(w, endpoint, http.StatusNoContent, answer{})
		return true, true
	}
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	return true, false
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// request is what both endpoints do before looking at the lines: method,
// CORS, content type, rate limit, body, limits. It returns the non-empty
// lines, or nil after having answered.
func (e *Edge) request(w http.ResponseWriter, r *http.Request, endpoint string, types ...string) (lines []string) {
	if _, done := e.cors(w, r, endpoint); done {
		return nil
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		e.reply(w, endpoint, http.StatusMethodNotAllowed, answer{Error: "POST only"})
		return nil
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !contains(types, ct) {
		e.reply(w, endpoint, http.StatusUnsupportedMediaType, answer{Error: "Content-Type must be one of " + strings.Join(types, ", ")})
		return nil
	}
	now := e.opts.Now()
	ip := ops.ClientIP(r, e.opts.TrustedProxies)
	if e.lim.empty(ip, now) {
		e.tooMany(w, endpoint, time.Second)
		return nil
	}
	_ = http.NewResponseController(w).SetReadDeadline(now.Add(bodyTimeout))
	buf := e.bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(e.opts.MaxBodyBytes)))
	// One string for the whole body: the reports' strings point into it.
	body := buf.String()
	e.bufPool.Put(buf)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e.reply(w, endpoint, http.StatusRequestEntityTooLarge, answer{Error: "body larger than " + strconv.Itoa(e.opts.MaxBodyBytes) + " bytes"})
		} else {
			e.reply(w, endpoint, http.StatusBadRequest, answer{Error: "cannot read the body"})
		}
		return nil
	}
	lines = make([]string, 0, 16)
	for len(body) > 0 {
		line := body
		if i := strings.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = ""
		}
		line = strings.TrimSuffix(line, "\r")
		if len(strings.TrimSpace(line)) == 0 {
			continue
		}
		if len(lines) == e.opts.MaxLines {
			e.reply(w, endpoint, http.StatusRequestEntityTooLarge, answer{Error: "more than " + strconv.Itoa(e.opts.MaxLines) + " lines"})
			return nil
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		e.reply(w, endpoint, http.StatusBadRequest, answer{Error: "empty body"})
		return nil
	}
	if ok, wait := e.lim.allow(ip, len(lines), now); !ok {
		e.tooMany(w, endpoint, wait)
		return nil
	}
	return lines
}

func (e *Edge) tooMany(w http.ResponseWriter, endpoint string, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	e.reply(w, endpoint, http.StatusTooManyRequests, answer{Error: "rate limit: too many reports from this address"})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// enter takes a request slot, or answers 503.
func (e *Edge) enter(w http.ResponseWriter, endpoint string) bool {
	select {
	case e.slots <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "1")
		e.reply(w, endpoint, http.StatusServiceUnavailable, answer{Error: "too many requests in progress"})
		return false
	}
}

func (e *Edge) leave() { <-e.slots }

// CMCDTypes are the accepted content types of /v1/cmcd: CMCD's own, and
// text/plain because navigator.sendBeacon (the one way to report from a
// closing page) may only send CORS-safelisted types. Origins are checked
// either way.
var CMCDTypes = []string{"application/cmcd", "text/plain"}

// EventTypes are the accepted content types of /v1/events.
var EventTypes = []string{"application/x-ndjson", "application/json", "text/plain"}

func (e *Edge) serveCMCD(w http.ResponseWriter, r *http.Request) {
	const endpoint = "cmcd"
	if !e.enter(w, endpoint) {
		return
	}
	defer e.leave()
	stream := r.PathValue("stream")
	if stream == "" {
		stream = e.opts.DefaultStream
	} else if !e.opts.ValidStream(stream) {
		e.reply(w, endpoint, http.StatusNotFound, answer{Error: "not a stream name"})
		return
	}
	lines := e.request(w, r, endpoint, CMCDTypes...)
	if lines == nil {
		return
	}
	now := e.opts.Now()
	meta := intake.Meta{Received: now.UnixMilli(), Stream: stream, Device: deviceClassCached(r.UserAgent()), Country: e.country(r)}
	recs := e.recsPool.Get().(*sessionRecords)
	defer e.recsPool.Put(recs)
	recs.reset(e.opts.IntakeTopic, e.opts.UserIDKey, meta.Headers())
	var bad []rejection
	popts := cmcd.Options{MaxLine: e.opts.MaxLineBytes, UserIDKey: e.opts.UserIDKey}
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	for i, line := range lines {
		rep, err := cmcd.ParseString(line, popts)
		if err != nil {
			bad = e.reject(bad, "cmcd", i, err, cmcd.ReasonOf(err))
			continue
		}
		rep.TS = e.clamp(rep.TS, now)
		recs.add(&rep, size)
	}
	e.send(w, endpoint, "cmcd", recs.records(), recs.reports, bad)
}

func (e *Edge) serveEvents(w http.ResponseWriter, r *http.Request) {
	const endpoint = "events"
	if !e.enter(w, endpoint) {
		return
	}
	defer e.leave()
	lines := e.request(w, r, endpoint, EventTypes...)
	if lines == nil {
		return
	}
	now := e.opts.Now()
	country := e.country(r)
	msgs := e.msgs()
	defer e.msgsPool.Put(msgs)
	var bad []rejection
	var ev event.Event
	for i, line := range lines {
		if len(line) > e.opts.MaxLineBytes {
			bad = e.reject(bad, "beacon", i, errors.New(strconv.Itoa(len(line))+" bytes"), "too_large")
			continue
		}
		if err := event.Decode([]byte(line), &ev); err != nil {
			bad = e.reject(bad, "beacon", i, err, event.ReasonOf(err))
			continue
		}
		// The source is the collector's to say, never the client's; a
		// trusted proxy's country beats the client's own claim.
		ev.Source = event.SourceBeacon
		if country != "" {
			ev.Country = country
		}
		ev.TS = time.UnixMilli(e.clamp(ev.TS.UnixMilli(), now)).UTC()
		*msgs = append(*msgs, &sarama.ProducerMessage{
			Topic: e.opts.EventsTopic, Key: sarama.StringEncoder(ev.SessionID), Value: sarama.ByteEncoder(ev.AppendJSON(nil)),
			Headers: schemaHeader, Timestamp: ev.TS,
		})
	}
	e.send(w, endpoint, "beacon", *msgs, len(*msgs), bad)
}

var schemaHeader = []sarama.RecordHeader{{Key: []byte(event.HeaderSchema), Value: []byte(strconv.Itoa(event.Version))}}

func (e *Edge) msgs() *[]*sarama.ProducerMessage {
	if p, ok := e.msgsPool.Get().(*[]*sarama.ProducerMessage); ok {
		*p = (*p)[:0]
		return p
	}
	s := make([]*sarama.ProducerMessage, 0, 16)
	return &s
}

func (e *Edge) reject(bad []rejection, kind string, i int, err error, reason string) []rejection {
	e.m.rejected.WithLabelValues(kind, reason).Inc()
	e.warn.Warn(kind+"/"+reason, "bad "+kind+" line refused", "reason", reason, "err", truncate(err.Error()))
	detail := err.Error()
	var ce *cmcd.Error
	if errors.As(err, &ce) {
		detail = strings.TrimSpace(ce.Key + " " + ce.Detail)
	}
	return append(bad, rejection{Line: i + 1, Reason: reason, Detail: truncate(detail)})
}

// send reserves room for the good records (reports of them) and hands them
// over; the answer is 204 when every line was good, 400 with the reasons
// when some were not (the good ones are kept), 503 when Kafka cannot take
// them now.
func (e *Edge) send(w http.ResponseWriter, endpoint, kind string, msgs []*sarama.ProducerMessage, reports int, bad []rejection) {
	if len(msgs) > 0 {
		if err := e.prod.Reserve(reports); err != nil {
			e.warn.Warn("unavailable", "reports refused with 503", "err", err)
			w.Header().Set("Retry-After", "5")
			e.reply(w, endpoint, http.StatusServiceUnavailable, answer{Error: "temporarily unavailable: " + err.Error(), Rejected: bad})
			return
		}
		sent := 0
		for _, m := range msgs {
			if !e.prod.Send(m) {
				e.prod.Release(reports - sent - reportsIn(m))
				w.Header().Set("Retry-After", "5")
				e.reply(w, endpoint, http.StatusServiceUnavailable, answer{Error: "shutting down", Accepted: sent, Rejected: bad})
				return
			}
			sent += reportsIn(m)
		}
		e.m.acceptedFor[kind].Add(float64(reports))
	}
	if len(bad) > 0 {
		e.reply(w, endpoint, http.StatusBadRequest, answer{Error: "some lines were refused; the others were accepted", Accepted: reports, Rejected: bad})
		return
	}
	e.reply(w, endpoint, http.StatusNoContent, answer{})
}

// clamp keeps ts within the tolerance of the collector's clock.
func (e *Edge) clamp(ts int64, now time.Time) int64 {
	n, tol := now.UnixMilli(), e.opts.TSTolerance.Milliseconds()
	switch {
	case ts < n-tol:
		e.m.clamped.Inc()
		return n - tol
	case ts > n+tol:
		e.m.clamped.Inc()
		return n + tol
	}
	return ts
}

var countryCode = regexp.MustCompile(`^[A-Z]{2}$`)

// country is the trusted proxy's country header, when the request came
// through a trusted proxy and the value is an ISO 3166-1 alpha-2 code.
func (e *Edge) country(r *http.Request) string {
	if e.opts.CountryHeader == "" {
		return ""
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip == nil || !ops.Trusted(ip, e.opts.TrustedProxies) {
		return ""
	}
	c := strings.ToUpper(strings.TrimSpace(r.Header.Get(e.opts.CountryHeader)))
	if !countryCode.MatchString(c) {
		return ""
	}
	return c
}

// Run delivers until ctx ends, then flushes within flush.
func (e *Edge) Run(ctx context.Context, flush time.Duration) { e.prod.Run(ctx, flush) }
