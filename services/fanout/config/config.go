// Package config is the fan-out's one configuration struct, public so that
// contract tests can compare it with what the chart and scripts set.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
)

// Config is everything the fan-out reads from the environment.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Addr                 string        `envconfig:"FANOUT_ADDR" default:":8080" desc:"listen address of the dashboard, /ws, /api and the ops endpoints"`
	Topics               []string      `envconfig:"FANOUT_TOPICS" default:"playback-events" desc:"comma-separated topics to serve; every replica reads every partition of each (may be empty when FANOUT_TOPIC_PATTERN is set)"`
	TopicPattern         string        `envconfig:"FANOUT_TOPIC_PATTERN" default:"playback-.*" desc:"regular expression (anchored) of more topics to serve; new matching topics and partitions are picked up within FANOUT_DISCOVERY_INTERVAL. The default matches the topic the controller gives a stream by default (playback- and the stream name), so new streams show without configuration; empty serves FANOUT_TOPICS only"`
	DiscoveryInterval    time.Duration `envconfig:"FANOUT_DISCOVERY_INTERVAL" default:"5s" desc:"how often to look for new topics and partitions"`
	AllowedOrigins       []string      `envconfig:"FANOUT_ALLOWED_ORIGINS" desc:"extra origins allowed to open /ws (scheme://host[:port]); same-origin is always allowed"`
	AuthToken            string        `envconfig:"FANOUT_AUTH_TOKEN" desc:"bearer token required on /ws and /api (Authorization: Bearer, or ?access_token= for browsers); empty = no token"`
	AuthTokenFile        string        `envconfig:"FANOUT_AUTH_TOKEN_FILE" desc:"file holding FANOUT_AUTH_TOKEN (a mounted Kubernetes secret)"`
	TailRate             int           `envconfig:"FANOUT_TAIL_RATE" default:"200" desc:"most live-tail events per second sent to one browser; the rest are counted as skipped"`
	FrameHz              int           `envconfig:"FANOUT_FRAME_HZ" default:"10" desc:"most tail frames per second sent to one browser (events are batched)"`
	WriteTimeout         time.Duration `envconfig:"FANOUT_WRITE_TIMEOUT" default:"10s" desc:"a browser that accepts no data for this long is disconnected"`
	Warmup               time.Duration `envconfig:"FANOUT_WARMUP" default:"5m" desc:"on start, replay each partition from this far back so charts are full at once (0 = start at the end)"`
	SnapshotHz           int           `envconfig:"FANOUT_SNAPSHOT_HZ" default:"4" desc:"snapshots per second, encoded once and shared by all browsers"`
	MaxConnections       int           `envconfig:"FANOUT_MAX_CONNECTIONS" default:"10000" desc:"most concurrent WebSocket clients; more are answered 503"`
	MaxConnectionsPerIP  int           `envconfig:"FANOUT_MAX_CONNECTIONS_PER_IP" default:"100" desc:"most concurrent WebSocket clients from one address; more are answered 503 (0 = no limit)"`
	TrustedProxies       []string      `envconfig:"FANOUT_TRUSTED_PROXIES" desc:"comma-separated CIDRs of proxies (ingress) whose X-Forwarded-For names the client address for the per-IP limit"`
	ResumeWindow         time.Duration `envconfig:"FANOUT_RESUME_WINDOW" default:"60s" desc:"how far back (by record timestamp) a reconnecting browser can resume the tail; older positions get an explicit gap"`
	TailBuffer           int           `envconfig:"FANOUT_TAIL_BUFFER" default:"100000" desc:"events kept in memory for the tail and resume (about 500 bytes each); bounds FANOUT_RESUME_WINDOW at high rates"`
	MaxSessions          int           `envconfig:"FANOUT_MAX_SESSIONS" default:"500000" desc:"most viewing sessions tracked for the QoE figures (about 250 bytes each); beyond it the longest-idle session is evicted"`
	SessionTimeout       time.Duration `envconfig:"FANOUT_SESSION_TIMEOUT" default:"60s" desc:"a session silent this long is gone (not a viewer any more); 3x the producer heartbeat"`
	MaxStreams           int           `envconfig:"FANOUT_MAX_STREAMS" default:"20" desc:"most streams with their own figures and 15-minute series (about 700 KB each); beyond it the least recently seen is dropped"`
	StaleAfter           time.Duration `envconfig:"FANOUT_STALE_AFTER" default:"5s" desc:"browsers are told the data is stale when Kafka has not answered for this long"`
	resolvedToken        string
	trustedProxiesParsed []*net.IPNet
}

// Token returns the auth token from FANOUT_AUTH_TOKEN or the file; valid
// after Validate.
func (c *Config) Token() string { return c.resolvedToken }

// Proxies returns the parsed FANOUT_TRUSTED_PROXIES; valid after Validate.
func (c *Config) Proxies() []*net.IPNet { return c.trustedProxiesParsed }

// Pattern returns the compiled FANOUT_TOPIC_PATTERN, or nil.
func (c *Config) Pattern() *regexp.Regexp {
	if c.TopicPattern == "" {
		return nil
	}
	return regexp.MustCompile("^(?:" + c.TopicPattern + ")$")
}

// Validate checks values beyond their types.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	topics := c.Topics[:0]
	for _, t := range c.Topics {
		if strings.TrimSpace(t) == "" {
			return envconf.Invalid("FANOUT_TOPICS", "contains an empty topic name")
		}
		topics = append(topics, strings.TrimSpace(t))
	}
	c.Topics = topics
	if c.TopicPattern != "" {
		if _, err := regexp.Compile("^(?:" + c.TopicPattern + ")$"); err != nil {
			return envconf.Invalid("FANOUT_TOPIC_PATTERN", "not a regular expression: %v", err)
		}
	}
	if len(c.Topics) == 0 && c.TopicPattern == "" {
		return envconf.Invalid("FANOUT_TOPICS", "must list at least one topic (or set FANOUT_TOPIC_PATTERN)")
	}
	if c.DiscoveryInterval < 500*time.Millisecond || c.DiscoveryInterval > 10*time.Second {
		return envconf.Invalid("FANOUT_DISCOVERY_INTERVAL", "must be between 500ms and 10s, got %s", c.DiscoveryInterval)
	}
	for _, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return envconf.Invalid("FANOUT_ALLOWED_ORIGINS", "%q is not scheme://host[:port]", o)
		}
	}
	c.resolvedToken = c.AuthToken
	if c.AuthTokenFile != "" {
		if c.AuthToken != "" {
			return envconf.Invalid("FANOUT_AUTH_TOKEN_FILE", "set either FANOUT_AUTH_TOKEN or FANOUT_AUTH_TOKEN_FILE, not both")
		}
		b, err := os.ReadFile(c.AuthTokenFile)
		if err != nil {
			return envconf.Invalid("FANOUT_AUTH_TOKEN_FILE", "%v", err)
		}
		c.resolvedToken = strings.TrimRight(string(b), "\r\n")
		if c.resolvedToken == "" {
			return envconf.Invalid("FANOUT_AUTH_TOKEN_FILE", "%s is empty", c.AuthTokenFile)
		}
	}
	if strings.ContainsAny(c.resolvedToken, " \t\r\n") {
		return envconf.Invalid("FANOUT_AUTH_TOKEN", "must not contain white space")
	}
	if c.TailRate < 1 {
		return envconf.Invalid("FANOUT_TAIL_RATE", "must be at least 1, got %d", c.TailRate)
	}
	if c.FrameHz < 1 || c.FrameHz > 60 {
		return envconf.Invalid("FANOUT_FRAME_HZ", "must be between 1 and 60, got %d", c.FrameHz)
	}
	if c.WriteTimeout < time.Second {
		return envconf.Invalid("FANOUT_WRITE_TIMEOUT", "must be at least 1s, got %s", c.WriteTimeout)
	}
	if c.Warmup < 0 {
		return envconf.Invalid("FANOUT_WARMUP", "must not be negative, got %s", c.Warmup)
	}
	if c.SnapshotHz < 1 || c.SnapshotHz > 20 {
		return envconf.Invalid("FANOUT_SNAPSHOT_HZ", "must be between 1 and 20, got %d", c.SnapshotHz)
	}
	if c.MaxConnections < 1 {
		return envconf.Invalid("FANOUT_MAX_CONNECTIONS", "must be at least 1, got %d", c.MaxConnections)
	}
	if c.MaxConnectionsPerIP < 0 {
		return envconf.Invalid("FANOUT_MAX_CONNECTIONS_PER_IP", "must not be negative, got %d", c.MaxConnectionsPerIP)
	}
	c.trustedProxiesParsed = nil
	for _, p := range c.TrustedProxies {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil {
				bits := 32
				if ip.To4() == nil {
					bits = 128
				}
				p = fmt.Sprintf("%s/%d", p, bits)
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return envconf.Invalid("FANOUT_TRUSTED_PROXIES", "%q is not an address or CIDR", p)
		}
		c.trustedProxiesParsed = append(c.trustedProxiesParsed, n)
	}
	if c.ResumeWindow < 0 || c.ResumeWindow > 15*time.Minute {
		return envconf.Invalid("FANOUT_RESUME_WINDOW", "must be between 0 and 15m, got %s", c.ResumeWindow)
	}
	if c.TailBuffer < 1024 || c.TailBuffer > 10_000_000 {
		return envconf.Invalid("FANOUT_TAIL_BUFFER", "must be between 1024 and 10000000 events, got %d", c.TailBuffer)
	}
	if c.MaxSessions < 1 {
		return envconf.Invalid("FANOUT_MAX_SESSIONS", "must be at least 1, got %d", c.MaxSessions)
	}
	if c.SessionTimeout < time.Second || c.SessionTimeout > 15*time.Minute {
		return envconf.Invalid("FANOUT_SESSION_TIMEOUT", "must be between 1s and 15m, got %s", c.SessionTimeout)
	}
	if c.MaxStreams < 1 || c.MaxStreams > 1000 {
		return envconf.Invalid("FANOUT_MAX_STREAMS", "must be between 1 and 1000, got %d", c.MaxStreams)
	}
	if c.StaleAfter < time.Second {
		return envconf.Invalid("FANOUT_STALE_AFTER", "must be at least 1s, got %s", c.StaleAfter)
	}
	return nil
}
