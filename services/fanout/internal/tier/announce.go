package tier

import (
	"context"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/fanout/internal/forward"
	"playpulse.dev/services/playback/ratelog"
)

// AnnounceOptions configure a merge-role fan-out's filter announcements.
type AnnounceOptions struct {
	Topic    string // the filters topic
	Instance string // the key: one announcement per fan-out process
	// Narrow lists the users and titles this fan-out's browsers filter on
	// (hub.Narrow).
	Narrow func() (users, movies []string)
	// Every is how often the announcement is renewed (default 5 s); it is
	// valid for six times that, so a fan-out that dies stops asking soon.
	Every time.Duration
	Log   *slog.Logger
}

// Announce tells the aggregators, through the filters topic, which users
// and titles this fan-out's browsers filter on, so that every event of
// them reaches the tail topic and not only the sample (internal/forward).
// It renews the announcement every Every while there are filters, and
// withdraws it (an empty value) when there are none and when ctx ends.
func Announce(ctx context.Context, sc *sarama.Config, brokers []string, opts AnnounceOptions) {
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
	}
	warn := ratelog.New(opts.Log, time.Minute)
	c := *sc
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 3
	c.Net.DialTimeout = 5 * time.Second
	var prod sarama.SyncProducer
	defer func() {
		if prod != nil {
			_ = prod.Close()
		}
	}()
	var last []forward.Filter
	send := func(value []byte) bool {
		if prod == nil {
			p, err := sarama.NewSyncProducer(brokers, &c)
			if err != nil {
				warn.Warn("announce", "cannot announce the tail filters, retrying", "topic", opts.Topic, "err", err)
				return false
			}
			prod = p
		}
		msg := &sarama.ProducerMessage{Topic: opts.Topic, Key: sarama.StringEncoder(opts.Instance)}
		if value != nil {
			msg.Value = sarama.ByteEncoder(value)
		}
		if _, _, err := prod.SendMessage(msg); err != nil {
			warn.Warn("announce", "cannot announce the tail filters, retrying", "topic", opts.Topic, "err", err)
			return false
		}
		return true
	}
	t := time.NewTicker(opts.Every)
	defer t.Stop()
	for {
		users, movies := opts.Narrow()
		var fs []forward.Filter
		for _, u := range users {
			fs = append(fs, forward.Filter{User: u})
		}
		for _, m := range movies {
			fs = append(fs, forward.Filter{Movie: m})
		}
		if len(fs) > forward.MaxFilters {
			warn.Warn("announce:many", "more filtered users and titles than one announcement carries; the rest see the sample only", "filters", len(fs), "max", forward.MaxFilters)
			fs = fs[:forward.MaxFilters]
		}
		switch {
		case len(fs) > 0:
			a := forward.Announcement{Expires: time.Now().Add(6 * opts.Every).UnixMilli(), Filters: fs}
			if send(a.Encode()) {
				last = fs
			}
		case len(last) > 0:
			if send(nil) {
				last = nil
			}
		}
		select {
		case <-ctx.Done():
			if len(last) > 0 {
				send(nil)
			}
			return
		case <-t.C:
		}
	}
}
