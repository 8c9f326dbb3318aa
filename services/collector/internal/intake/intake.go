// Package intake is the format of the collector's intake topic, written by
// the HTTP edge and read by the sessionizer:
//
//   - key: the reports' sid, so that a session's reports share a partition
//     and so one owner;
//   - value: the canonical lines (cmcd.Report.AppendLine) of one or more
//     reports of that sid from one request, in the order they came,
//     separated by '\n', at most MaxValue bytes: a player's batch is one
//     record, not one per report (the producer's cost is per record);
//   - timestamp: the earliest ts of its reports, each clamped to the
//     edge's clock ± the tolerance (a device clock can be hours off);
//   - headers: what the edge derived, which the report cannot say: the
//     stream (URL path), the device class (User-Agent), the country (the
//     trusted proxy's header), and the time the edge received it, which is
//     the sessionizer's clock.
//
// Tick records (header playpulse-tick) carry only a received time: the
// sessionizer writes them into a quiet partition it owns so that time moves
// on for the sessions in it, deterministically for whoever replays it.
package intake

import (
	"errors"
	"strconv"

	"github.com/IBM/sarama"
)

// Header names.
const (
	HeaderFormat   = "playpulse-intake" // format version, "1"
	HeaderTick     = "playpulse-tick"   // present (value "1") on tick records
	HeaderReceived = "received"         // Unix ms, decimal
	HeaderStream   = "stream"
	HeaderDevice   = "device"
	HeaderCountry  = "country"
)

// Version is the value of HeaderFormat this package writes and reads.
const Version = "1"

// MaxValue bounds a record's value: far below the producer's and the
// topic's default 1 MiB message limit, and above the longest line
// (COLLECTOR_MAX_LINE_BYTES, at most 64 KiB).
const MaxValue = 256 << 10

// Meta is what the edge derived for a report.
type Meta struct {
	Received int64 // Unix ms
	Stream   string
	Device   string
	Country  string // "" when unknown
	Tick     bool
}

// Headers returns the record headers of m.
func (m Meta) Headers() []sarama.RecordHeader {
	h := []sarama.RecordHeader{
		{Key: []byte(HeaderFormat), Value: []byte(Version)},
		{Key: []byte(HeaderReceived), Value: strconv.AppendInt(nil, m.Received, 10)},
	}
	if m.Tick {
		return append(h, sarama.RecordHeader{Key: []byte(HeaderTick), Value: []byte("1")})
	}
	h = append(h,
		sarama.RecordHeader{Key: []byte(HeaderStream), Value: []byte(m.Stream)},
		sarama.RecordHeader{Key: []byte(HeaderDevice), Value: []byte(m.Device)})
	if m.Country != "" {
		h = append(h, sarama.RecordHeader{Key: []byte(HeaderCountry), Value: []byte(m.Country)})
	}
	return h
}

// ErrNotIntake is returned for a record without the format header.
var ErrNotIntake = errors.New("not an intake record (no playpulse-intake header)")

// ParseHeaders reads the headers of an intake record.
func ParseHeaders(hs []*sarama.RecordHeader) (Meta, error) {
	var m Meta
	format := ""
	for _, h := range hs {
		switch string(h.Key) {
		case HeaderFormat:
			format = string(h.Value)
		case HeaderReceived:
			n, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return m, errors.New("bad received header")
			}
			m.Received = n
		case HeaderTick:
			m.Tick = true
		case HeaderStream:
			m.Stream = string(h.Value)
		case HeaderDevice:
			m.Device = string(h.Value)
		case HeaderCountry:
			m.Country = string(h.Value)
		}
	}
	switch {
	case format == "":
		return m, ErrNotIntake
	case format != Version:
		return m, errors.New("unsupported intake format " + strconv.Quote(format))
	case m.Received <= 0:
		return m, errors.New("no received header")
	case !m.Tick && (m.Stream == "" || m.Device == ""):
		return m, errors.New("no stream or device header")
	}
	return m, nil
}
