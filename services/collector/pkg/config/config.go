// Package config is the collector's one configuration struct and its
// resolve step. It is public (pkg/, not internal/) so that the tests and
// tools modules can read the variables it declares: the README and
// docs/collector.md tables are made from it.
package config

import (
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
)

// Roles of a collector process.
const (
	RoleIngest     = "ingest"     // the HTTP edge: reports and beacons into Kafka
	RoleSessionize = "sessionize" // the consumer group that turns reports into events
)

// Config is everything the collector reads from the environment.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Addr  string   `envconfig:"COLLECTOR_ADDR" default:":8083" format:"listen" desc:"listen address of /v1/cmcd, /v1/events and the ops endpoints"`
	Roles []string `envconfig:"COLLECTOR_ROLES" default:"ingest,sessionize" desc:"what this process does: ingest (the HTTP edge, stateless), sessionize (the consumer group that owns the sessions), or both"`

	IntakeTopic   string `envconfig:"COLLECTOR_INTAKE_TOPIC" default:"playpulse-cmcd" desc:"topic of the accepted CMCD reports, keyed by sid (the edge writes it, the sessionizer reads it); it must exist"`
	EventsTopic   string `envconfig:"COLLECTOR_EVENTS_TOPIC" default:"playback-players" desc:"topic of the contract events (source cmcd and beacon), keyed by session_id; the fan-out's default pattern playback-.* serves it; it must exist"`
	Group         string `envconfig:"COLLECTOR_GROUP" default:"playpulse-collector" desc:"consumer group of the sessionizers; also the prefix of their transactional ids (one per intake partition)"`
	DefaultStream string `envconfig:"COLLECTOR_DEFAULT_STREAM" default:"players" desc:"stream of reports posted to /v1/cmcd without a stream in the path (/v1/cmcd/{stream} names one)"`

	AllowedOrigins []string `envconfig:"COLLECTOR_ALLOWED_ORIGINS" desc:"origins (scheme://host[:port]) of the pages whose players may post cross-origin; * allows any; empty: none (same-origin and native players only)"`
	TrustedProxies []string `envconfig:"COLLECTOR_TRUSTED_PROXIES" desc:"comma-separated CIDRs of proxies (ingress, CDN) whose X-Forwarded-For names the client and whose COLLECTOR_COUNTRY_HEADER is believed"`
	CountryHeader  string   `envconfig:"COLLECTOR_COUNTRY_HEADER" desc:"request header holding the viewer's ISO country code, set by a trusted proxy (e.g. CloudFront-Viewer-Country, CF-IPCountry); empty: no country"`
	UserIDKey      string   `envconfig:"COLLECTOR_USER_ID_KEY" desc:"custom CMCD key carrying the viewer's id (e.g. com.example-uid); empty: every viewer is anonymous"`

	MaxBodyBytes  int `envconfig:"COLLECTOR_MAX_BODY_BYTES" default:"65536" min:"1024" max:"10485760" desc:"largest request body; larger is answered 413"`
	MaxLines      int `envconfig:"COLLECTOR_MAX_LINES" default:"100" min:"1" max:"10000" desc:"most reports (lines) in one request; more is answered 413"`
	MaxLineBytes  int `envconfig:"COLLECTOR_MAX_LINE_BYTES" default:"4096" min:"256" max:"65536" desc:"longest report line; a longer one is refused (400, line_too_long)"`
	RateLimit     int `envconfig:"COLLECTOR_RATE_LIMIT" default:"100" min:"0" max:"1000000" desc:"reports per second allowed from one client address (an IPv6 /64 counts as one); more is answered 429 with Retry-After; 0: no limit. One hls.js in an error loop sends about 12/s, and a household or carrier NAT shares one address"`
	RateBurst     int `envconfig:"COLLECTOR_RATE_BURST" default:"400" min:"1" max:"1000000" desc:"reports one client address may send at once above COLLECTOR_RATE_LIMIT; at least COLLECTOR_MAX_LINES"`
	RateAddresses int `envconfig:"COLLECTOR_RATE_ADDRESSES" default:"100000" min:"1" max:"10000000" desc:"client addresses whose rate is tracked (about 150 bytes each); beyond it the least recently seen is forgotten"`

	MaxBuffered     int           `envconfig:"COLLECTOR_MAX_BUFFERED" default:"100000" min:"1" max:"10000000" desc:"reports accepted (answered 2xx) but not yet acknowledged by Kafka; when full, requests are answered 503 with Retry-After"`
	DeliveryTimeout time.Duration `envconfig:"COLLECTOR_DELIVERY_TIMEOUT" default:"5m" min:"10s" max:"1h" desc:"how long an accepted report is retried while Kafka is unreachable before it is counted as lost (playpulse_collector_lost_total)"`
	TSTolerance     time.Duration `envconfig:"COLLECTOR_TS_TOLERANCE" default:"5m" min:"1s" max:"24h" desc:"a report's ts further than this from the collector's clock is clamped to it (a device clock can be hours off); the clamped time is the record's timestamp and the events' ts"`

	ReorderWindow     time.Duration `envconfig:"COLLECTOR_REORDER_WINDOW" default:"1s" min:"10ms" max:"30s" desc:"how long a report waits for a missing earlier sn of its session (players post concurrently, so reports overtake each other); then the gap is skipped"`
	InactivityTimeout time.Duration `envconfig:"COLLECTOR_INACTIVITY_TIMEOUT" default:"45s" min:"1s" max:"15m" desc:"a session silent this long is stopped (quit, or exit_before_start before its first frame): closing a tab sends nothing. Above the players' report interval, below the fan-out's FANOUT_SESSION_TIMEOUT (60s)"`
	StoppedTTL        time.Duration `envconfig:"COLLECTOR_STOPPED_TTL" default:"2m" min:"1s" max:"1h" desc:"how long a stopped session's id is remembered after its last report, so that reports a player sends after its stop are ignored, not a new session"`
	RebuildLookback   time.Duration `envconfig:"COLLECTOR_REBUILD_LOOKBACK" default:"3m" min:"1s" max:"1h" desc:"how far before its committed offset a new owner of an intake partition replays it to rebuild the sessions (emitting nothing); at least COLLECTOR_INACTIVITY_TIMEOUT + COLLECTOR_REORDER_WINDOW"`
	MaxSessions       int           `envconfig:"COLLECTOR_MAX_SESSIONS" default:"100000" min:"1" max:"10000000" desc:"most sessions (live and recently stopped) per owned intake partition (about 1 KB each); beyond it a stopped one is forgotten or the longest-idle live one is stopped"`
	CommitInterval    time.Duration `envconfig:"COLLECTOR_COMMIT_INTERVAL" default:"100ms" min:"5ms" max:"10s" desc:"longest a consumed report waits before its events and the consumer offset are committed in one Kafka transaction (the fan-out sees events when they commit)"`
}

var streamName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Validate checks what the tags cannot (envconf has validated the embedded
// Kafka and logging settings first).
func (c *Config) Validate() error {
	if len(c.Roles) == 0 {
		return envconf.Invalid("COLLECTOR_ROLES", "must name ingest, sessionize or both")
	}
	for _, r := range c.Roles {
		if r != RoleIngest && r != RoleSessionize {
			return envconf.Invalid("COLLECTOR_ROLES", "%q is not ingest or sessionize", r)
		}
	}
	for name, v := range map[string]string{"COLLECTOR_INTAKE_TOPIC": c.IntakeTopic, "COLLECTOR_EVENTS_TOPIC": c.EventsTopic, "COLLECTOR_GROUP": c.Group} {
		if v == "" {
			return envconf.Invalid(name, "must not be empty")
		}
	}
	if c.IntakeTopic == c.EventsTopic {
		return envconf.Invalid("COLLECTOR_EVENTS_TOPIC", "must differ from COLLECTOR_INTAKE_TOPIC")
	}
	if !streamName.MatchString(c.DefaultStream) {
		return envconf.Invalid("COLLECTOR_DEFAULT_STREAM", "%q is not a stream name (lower case letters, digits, - and ., at most 63)", c.DefaultStream)
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return envconf.Invalid("COLLECTOR_ALLOWED_ORIGINS", "%q is not scheme://host[:port] or *", o)
		}
	}
	if c.UserIDKey != "" && !cmcd.ValidKey(c.UserIDKey) {
		return envconf.Invalid("COLLECTOR_USER_ID_KEY", "%q is not a CMCD custom key (lower case, with a hyphenated prefix, e.g. com.example-uid)", c.UserIDKey)
	}
	if c.RateBurst < c.MaxLines {
		return envconf.Invalid("COLLECTOR_RATE_BURST", "must be at least COLLECTOR_MAX_LINES (%d): a full batch must be able to pass", c.MaxLines)
	}
	if c.MaxLineBytes > c.MaxBodyBytes {
		return envconf.Invalid("COLLECTOR_MAX_LINE_BYTES", "must not exceed COLLECTOR_MAX_BODY_BYTES")
	}
	if c.RebuildLookback < c.InactivityTimeout+c.ReorderWindow {
		return envconf.Invalid("COLLECTOR_REBUILD_LOOKBACK", "must be at least COLLECTOR_INACTIVITY_TIMEOUT + COLLECTOR_REORDER_WINDOW (%s): a new owner must see every session still live", c.InactivityTimeout+c.ReorderWindow)
	}
	if c.ReorderWindow >= c.InactivityTimeout {
		return envconf.Invalid("COLLECTOR_REORDER_WINDOW", "must be shorter than COLLECTOR_INACTIVITY_TIMEOUT")
	}
	return nil
}

// Resolved is what the collector is built from: the configuration as
// loaded and checked, and what is derived from it once, at start.
type Resolved struct {
	Config
	Log    *slog.Logger
	Sarama *sarama.Config // the connection settings, files read (kafkacfg)
	// Proxies are COLLECTOR_TRUSTED_PROXIES parsed.
	Proxies []*net.IPNet
	// Ingest and Sessionize say which roles run.
	Ingest, Sessionize bool
}

// Resolve builds the logger and the Kafka client settings (reading the TLS
// and SASL files) and parses the trusted proxies.
func (c *Config) Resolve() (Resolved, error) {
	r := Resolved{Config: *c, Log: c.Logger("collector"),
		Ingest: slices.Contains(c.Roles, RoleIngest), Sessionize: slices.Contains(c.Roles, RoleSessionize)}
	var err error
	if r.Sarama, err = c.Config.Sarama(); err != nil {
		return Resolved{}, err
	}
	if r.Proxies, err = envconf.CIDRs("COLLECTOR_TRUSTED_PROXIES", c.TrustedProxies); err != nil {
		return Resolved{}, err
	}
	return r, nil
}

// ValidStream reports whether s can name a stream in /v1/cmcd/{stream}: a
// PlaybackStream name (a DNS subdomain label set, at most 63 characters).
func ValidStream(s string) bool { return streamName.MatchString(s) }
