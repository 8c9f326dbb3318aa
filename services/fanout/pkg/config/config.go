// Package config is the fan-out's one configuration struct and its resolve
// step. It is public (pkg/, not internal/) so that the tests and tools
// modules can read the variables it declares: contract tests compare it
// with what the chart and scripts set, and the README tables are made from
// it.
package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/fanout/internal/alert"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
)

// Config is everything the fan-out reads from the environment.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Addr                string        `envconfig:"FANOUT_ADDR" default:":8080" format:"listen" desc:"listen address of the dashboard, /ws, /api and the ops endpoints"`
	Topics              []string      `envconfig:"FANOUT_TOPICS" default:"playback-events" desc:"comma-separated topics to serve; every replica reads every partition of each (may be empty when FANOUT_TOPIC_PATTERN is set)"`
	TopicPattern        string        `envconfig:"FANOUT_TOPIC_PATTERN" default:"playback-.*" desc:"regular expression (anchored) of more topics to serve; new matching topics and partitions are picked up within FANOUT_DISCOVERY_INTERVAL. The default matches the topic the controller gives a stream by default (playback- and the stream name), so new streams show without configuration; empty serves FANOUT_TOPICS only"`
	DiscoveryInterval   time.Duration `envconfig:"FANOUT_DISCOVERY_INTERVAL" default:"5s" min:"500ms" max:"10s" desc:"how often to look for new topics and partitions"`
	AllowedOrigins      []string      `envconfig:"FANOUT_ALLOWED_ORIGINS" desc:"extra origins allowed to open /ws (scheme://host[:port]); same-origin is always allowed"`
	AuthToken           string        `envconfig:"FANOUT_AUTH_TOKEN" desc:"bearer token required on /ws and /api (Authorization: Bearer, or ?access_token= for browsers); empty = no token"`
	AuthTokenFile       string        `envconfig:"FANOUT_AUTH_TOKEN_FILE" desc:"file holding FANOUT_AUTH_TOKEN (a mounted Kubernetes secret)"`
	TailRate            int           `envconfig:"FANOUT_TAIL_RATE" default:"50" min:"1" desc:"most live-tail events per second sent to one browser; the rest are counted as skipped. The dashboard draws at most 15 rows a second: raise it for clients that use every event"`
	FrameHz             int           `envconfig:"FANOUT_FRAME_HZ" default:"10" min:"1" max:"60" desc:"tail frames per second every browser keeps however many are connected (the floor of the adaptive rate); one frame carries at most FANOUT_TAIL_RATE/FANOUT_FRAME_HZ events"`
	MaxFrameHz          int           `envconfig:"FANOUT_MAX_FRAME_HZ" default:"200" min:"1" max:"1000" desc:"most tail frames per second sent to one browser while few are connected: a frame leaves as soon as there is something new, unless the browser had one less than 1/FANOUT_MAX_FRAME_HZ ago; at least FANOUT_FRAME_HZ"`
	FrameBudget         int           `envconfig:"FANOUT_FRAME_BUDGET" default:"20000" min:"100" max:"1000000" desc:"tail frames per second written to all browsers together: each gets FANOUT_FRAME_BUDGET/browsers frames a second, within FANOUT_FRAME_HZ and FANOUT_MAX_FRAME_HZ"`
	WriteTimeout        time.Duration `envconfig:"FANOUT_WRITE_TIMEOUT" default:"10s" min:"1s" desc:"a browser that accepts no data for this long is disconnected"`
	Warmup              time.Duration `envconfig:"FANOUT_WARMUP" default:"5m" min:"0s" desc:"on start, replay each partition from this far back so charts are full at once (0 = start at the end)"`
	SnapshotHz          int           `envconfig:"FANOUT_SNAPSHOT_HZ" default:"4" min:"1" max:"20" desc:"snapshots per second, encoded once and shared by all browsers"`
	SnapshotDelta       bool          `envconfig:"FANOUT_SNAPSHOT_DELTA" default:"true" desc:"send a browser that has the previous snapshot only what changed since (docs/protocol.md, Delta), computed once for all; false sends every snapshot complete"`
	MaxConnections      int           `envconfig:"FANOUT_MAX_CONNECTIONS" default:"10000" min:"1" desc:"most concurrent WebSocket clients; more are answered 503"`
	MaxConnectionsPerIP int           `envconfig:"FANOUT_MAX_CONNECTIONS_PER_IP" default:"100" min:"0" desc:"most concurrent WebSocket clients from one address; more are answered 503 (0 = no limit)"`
	TrustedProxies      []string      `envconfig:"FANOUT_TRUSTED_PROXIES" desc:"comma-separated CIDRs of proxies (ingress) whose X-Forwarded-For names the client address for the per-IP limit"`
	ResumeWindow        time.Duration `envconfig:"FANOUT_RESUME_WINDOW" default:"60s" min:"0s" max:"15m" desc:"how far back (by record timestamp) a reconnecting browser can resume the tail; older positions get an explicit gap"`
	TailBuffer          int           `envconfig:"FANOUT_TAIL_BUFFER" default:"100000" min:"1024" max:"10000000" desc:"events kept in memory for the tail and resume (about 500 bytes each); bounds FANOUT_RESUME_WINDOW at high rates"`
	MaxSessions         int           `envconfig:"FANOUT_MAX_SESSIONS" default:"500000" min:"1" desc:"most viewing sessions tracked for the QoE figures (about 250 bytes each); beyond it the longest-idle session is evicted"`
	SessionTimeout      time.Duration `envconfig:"FANOUT_SESSION_TIMEOUT" default:"60s" min:"1s" max:"15m" desc:"a session silent this long is gone (not a viewer any more); 3x the producer heartbeat"`
	MaxStreams          int           `envconfig:"FANOUT_MAX_STREAMS" default:"20" min:"1" max:"1000" desc:"most streams with their own figures and 15-minute series (about 700 KB each); beyond it the least recently seen is dropped"`
	StaleAfter          time.Duration `envconfig:"FANOUT_STALE_AFTER" default:"3s" min:"1s" desc:"browsers are told the data is stale when Kafka has not answered for this long"`
	MetricsTopCDNs      int           `envconfig:"FANOUT_METRICS_TOP_CDNS" default:"5" min:"1" max:"20" desc:"CDNs with their own cdn label on the playpulse_qoe_* metrics (the most watched; the rest are \"other\"); each adds a series per stream, source, device and country"`
	AlertRules          string        `envconfig:"FANOUT_ALERT_RULES" desc:"file of QoE alert rules evaluated in the fan-out, YAML or JSON (docs/alerts.md); empty = none. The chart mounts the controller's rendering of the QoEAlert resources here"`
	AlertWebhook        string        `envconfig:"FANOUT_ALERT_WEBHOOK" desc:"URL told of firing and resolved alerts in Alertmanager's format (POST /api/v2/alerts of an Alertmanager, or any receiver of it); empty = none"`
	AlertInterval       time.Duration `envconfig:"FANOUT_ALERT_INTERVAL" default:"5s" min:"1s" max:"1m" desc:"how often the alert rules are evaluated"`
	MetricsTopCountries int           `envconfig:"FANOUT_METRICS_TOP_COUNTRIES" default:"5" min:"1" max:"50" desc:"countries with their own country label on the playpulse_qoe_* metrics (the most watched; the rest are \"other\")"`
	Role                string        `envconfig:"FANOUT_ROLE" default:"single" desc:"single: read every partition of the raw topics and serve (the default); aggregator: read the raw topics in the consumer group FANOUT_GROUP and publish per-partition, per-second partials to FANOUT_AGGREGATES_TOPIC, serving only the ops endpoints; merge: serve the dashboard and API from the partials of FANOUT_AGGREGATES_TOPIC (docs/tier.md)"`
	AggregatesTopic     string        `envconfig:"FANOUT_AGGREGATES_TOPIC" default:"playpulse-aggregates" desc:"topic the aggregators publish their partials to and merge-role fan-outs read (roles aggregator and merge)"`
	Group               string        `envconfig:"FANOUT_GROUP" default:"playpulse-aggregators" desc:"Kafka consumer group of the aggregators: each raw partition is owned by one of them (role aggregator)"`
	AggregatorReplay    time.Duration `envconfig:"FANOUT_AGGREGATOR_REPLAY" default:"6m" min:"0s" max:"1h" desc:"how far before the committed offset's record an aggregator that takes a partition over replays it, to rebuild its sessions before publishing; at least FANOUT_SESSION_TIMEOUT + 5m is safe (role aggregator)"`
	TailTopic           string        `envconfig:"FANOUT_TAIL_TOPIC" default:"playpulse-tail" desc:"topic the aggregators forward the live tail's events to (each stream's fair sample and every event a browser's user or title filter asks for), read by merge-role fan-outs; empty = no tail in the tier (roles aggregator and merge)"`
	FiltersTopic        string        `envconfig:"FANOUT_FILTERS_TOPIC" default:"playpulse-tail-filters" desc:"compacted topic where merge-role fan-outs announce the users and titles their browsers filter on, so the aggregators forward every event of them (roles aggregator and merge)"`
	HistoryMargin       time.Duration `envconfig:"FANOUT_HISTORY_MARGIN" default:"7m" min:"1m" max:"24h" desc:"how long after a second its partials may have been published and still be read by /api/history: a takeover's replay (FANOUT_AGGREGATOR_REPLAY) plus a minute by default; raise it to the longest an aggregator was behind (an outage, a new group's FANOUT_WARMUP), each request then reads that much more (role merge)"`
	RollupsTopic        string        `envconfig:"FANOUT_ROLLUPS_TOPIC" desc:"topic where merge-role fan-outs write one rollup a minute (its figures for everything, each stream and each source), read back by /api/history?resolution=60 for the page's last 24 hours; create it first (cleanup.policy compact,delete, retention.ms of a week or more); empty = no rollups, history at one point a second only (role merge)"`
	TailSampleRate      int           `envconfig:"FANOUT_TAIL_SAMPLE_RATE" default:"100" min:"1" max:"100000" desc:"events a second of each stream the aggregators together forward to FANOUT_TAIL_TOPIC as its live-tail sample, evenly spaced (role aggregator)"`
}

// Roles of the fan-out binary (FANOUT_ROLE).
const (
	RoleSingle     = "single"
	RoleAggregator = "aggregator"
	RoleMerge      = "merge"
)

// Validate checks what the tags cannot (envconf has validated the embedded
// Kafka and logging settings first).
func (c *Config) Validate() error {
	if len(c.Topics) == 0 && c.TopicPattern == "" {
		return envconf.Invalid("FANOUT_TOPICS", "must list at least one topic (or set FANOUT_TOPIC_PATTERN)")
	}
	for _, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return envconf.Invalid("FANOUT_ALLOWED_ORIGINS", "%q is not scheme://host[:port]", o)
		}
	}
	if c.MaxFrameHz < c.FrameHz {
		return envconf.Invalid("FANOUT_MAX_FRAME_HZ", "%d is below FANOUT_FRAME_HZ (%d)", c.MaxFrameHz, c.FrameHz)
	}
	switch c.Role {
	case RoleSingle, RoleAggregator, RoleMerge:
	default:
		return envconf.Invalid("FANOUT_ROLE", "%q is not one of single, aggregator, merge", c.Role)
	}
	if c.Role != RoleSingle && c.AggregatesTopic == "" {
		return envconf.Invalid("FANOUT_AGGREGATES_TOPIC", "must be set with FANOUT_ROLE=%s", c.Role)
	}
	if c.Role == RoleAggregator && c.Group == "" {
		return envconf.Invalid("FANOUT_GROUP", "must be set with FANOUT_ROLE=aggregator")
	}
	if c.AuthTokenFile != "" && c.AuthToken != "" {
		return envconf.Invalid("FANOUT_AUTH_TOKEN_FILE", "set either FANOUT_AUTH_TOKEN or FANOUT_AUTH_TOKEN_FILE, not both")
	}
	return nil
}

// Resolved is what the fan-out is built from: the configuration as loaded
// and checked, and what is derived from it once, at start.
type Resolved struct {
	Config
	Log    *slog.Logger
	Sarama *sarama.Config // the connection settings, files read (kafkacfg)
	// Pattern is FANOUT_TOPIC_PATTERN compiled and anchored; nil when empty.
	Pattern *regexp.Regexp
	// Token is FANOUT_AUTH_TOKEN or the content of FANOUT_AUTH_TOKEN_FILE;
	// empty: no token required.
	Token string
	// Proxies are FANOUT_TRUSTED_PROXIES parsed; a bare address is a /32
	// (or /128).
	Proxies []*net.IPNet
	// Rules are the alert rules of FANOUT_ALERT_RULES, valid.
	Rules []alert.Rule
	// RulesAwaited: FANOUT_ALERT_RULES does not exist yet, but its
	// directory does (a mounted ConfigMap the controller has yet to
	// write); the rules are loaded when it appears.
	RulesAwaited bool
}

// Resolve reads the token file, compiles the topic pattern, parses the
// trusted proxies and builds the logger and the Kafka client settings.
func (c *Config) Resolve() (Resolved, error) {
	r := Resolved{Config: *c, Log: c.Logger("fanout"), Token: c.AuthToken}
	var err error
	if r.Sarama, err = c.Config.Sarama(); err != nil {
		return Resolved{}, err
	}
	if c.TopicPattern != "" {
		if r.Pattern, err = regexp.Compile("^(?:" + c.TopicPattern + ")$"); err != nil {
			return Resolved{}, envconf.Invalid("FANOUT_TOPIC_PATTERN", "not a regular expression: %v", err)
		}
	}
	if c.AuthTokenFile != "" {
		b, err := os.ReadFile(c.AuthTokenFile)
		if err != nil {
			return Resolved{}, envconf.Invalid("FANOUT_AUTH_TOKEN_FILE", "%v", err)
		}
		if r.Token = strings.TrimRight(string(b), "\r\n"); r.Token == "" {
			return Resolved{}, envconf.Invalid("FANOUT_AUTH_TOKEN_FILE", "%s is empty", c.AuthTokenFile)
		}
	}
	if strings.ContainsAny(r.Token, " \t\r\n") {
		return Resolved{}, envconf.Invalid("FANOUT_AUTH_TOKEN", "must not contain white space")
	}
	if r.Proxies, err = envconf.CIDRs("FANOUT_TRUSTED_PROXIES", c.TrustedProxies); err != nil {
		return Resolved{}, err
	}
	if c.AlertWebhook != "" {
		if u, err := url.Parse(c.AlertWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Resolved{}, envconf.Invalid("FANOUT_ALERT_WEBHOOK", "%q is not an http(s) URL", c.AlertWebhook)
		}
		if c.AlertRules == "" {
			return Resolved{}, envconf.Invalid("FANOUT_ALERT_WEBHOOK", "set without FANOUT_ALERT_RULES: there would be nothing to send")
		}
	}
	if c.AlertRules != "" {
		r.Rules, err = alert.Load(c.AlertRules)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist) && isDir(filepath.Dir(c.AlertRules)):
			// The directory of an optional ConfigMap that the controller has
			// not written yet: the kubelet mounts it empty. The fan-out
			// starts without rules and loads the file when it appears. A
			// path whose directory is missing is a typo, and an error.
			r.RulesAwaited = true
		default:
			return Resolved{}, envconf.Invalid("FANOUT_ALERT_RULES", "%v", err)
		}
	}
	return r, nil
}

// isDir says whether path is a directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
