// Package event is the Playpulse event contract: one JSON object per Kafka
// record, keyed by session_id, timestamped with the event time.
//
// Encoding and decoding are hand-written rather than reflection-based for two
// reasons: the fan-out decodes every record of every partition on the hot
// path, and a rejected record must say precisely why (missing field, wrong
// type, unknown type, ...) so that bad-record metrics are actionable.
// The JSON Schema in schema/event.schema.json describes the same contract for
// non-Go producers and consumers; tests keep the two in step.
package event

import (
	_ "embed"
	"time"
)

// Version is the schema version this package writes in the "v" field and the
// "playpulse-schema" record header. Decoders accept exactly this version:
// a future incompatible contract gets a new number and a new decoder path.
const Version = 1

// HeaderSchema is the Kafka record header that carries the schema version, so
// consumers can route records without parsing the body.
const HeaderSchema = "playpulse-schema"

// MaxRecordBytes is the largest record value the decoder accepts. Real events
// are a few hundred bytes; anything near this is garbage or an attack.
const MaxRecordBytes = 64 << 10

// Schema is the JSON Schema (draft 2020-12) of one event.
//
//go:embed schema/event.schema.json
var Schema []byte

// Type is the kind of a playback event.
type Type uint8

// The original demo's six types come first; the rest were added for QoE.
const (
	TypeUnknown Type = iota
	Play             // first frame (carries startup_ms) or resume after pause
	Pause
	Stop // session ends; carries stop_reason
	Seek // carries from_seconds; position_seconds is the target
	BufferStart
	BufferEnd // carries stall_ms
	Start     // viewer asked to play; startup begins
	BitrateChange
	Heartbeat
	Error
	numTypes
)

var typeNames = [numTypes]string{
	TypeUnknown:   "",
	Play:          "play",
	Pause:         "pause",
	Stop:          "stop",
	Seek:          "seek",
	BufferStart:   "buffer_start",
	BufferEnd:     "buffer_end",
	Start:         "start",
	BitrateChange: "bitrate_change",
	Heartbeat:     "heartbeat",
	Error:         "error",
}

// Types lists every valid event type, in declaration order.
func Types() []Type {
	out := make([]Type, 0, numTypes-1)
	for t := Type(1); t < numTypes; t++ {
		out = append(out, t)
	}
	return out
}

// NumTypes is one more than the largest Type, for arrays indexed by Type.
const NumTypes = int(numTypes)

func (t Type) String() string {
	if t >= numTypes {
		return ""
	}
	return typeNames[t]
}

// ParseType returns the Type with the given wire name, or TypeUnknown.
func ParseType(s string) Type {
	for t := Type(1); t < numTypes; t++ {
		if typeNames[t] == s {
			return t
		}
	}
	return TypeUnknown
}

// Stop reasons.
const (
	StopEnded           = "ended"             // played to the end of the title
	StopQuit            = "quit"              // viewer left after the first frame
	StopError           = "error"             // a fatal error ended the session
	StopExitBeforeStart = "exit_before_start" // viewer left before the first frame, no error
)

// Sources, the values of the optional "source" field.
const (
	SourceSim    = "sim"    // the viewing-session simulator (producer)
	SourceCMCD   = "cmcd"   // a real player's CMCD v2 event reports, mapped by the collector
	SourceBeacon = "beacon" // contract events posted to the collector by a custom player or SDK
)

// Sources lists the valid source values.
var Sources = []string{SourceSim, SourceCMCD, SourceBeacon}

// StopReasons lists the valid stop_reason values.
var StopReasons = []string{StopEnded, StopQuit, StopError, StopExitBeforeStart}

// Event is one playback event. Field names and JSON names of the original
// demo are kept; the rest are additions of contract version 1.
type Event struct {
	V         int    // schema version, always Version when encoded by us
	EventID   string // globally unique
	SessionID string // one viewing session; also the record key
	Seq       uint64 // per-session sequence, 1 for the session's start
	Stream    string // the PlaybackStream that produced the event
	UserID    string
	MovieID   string
	Type      Type      // JSON "event_type"
	Position  float64   // JSON "position_seconds": playhead, seconds
	Bitrate   int       // JSON "bitrate_kbps": current rendition, 0 before the first frame
	Device    string    // tv, mobile, desktop, tablet
	TS        time.Time // JSON "ts": event time, RFC 3339 UTC with milliseconds

	// Context; optional, empty when unknown.
	Network string
	Country string
	CDN     string
	// Source says what produced the event: SourceSim (the simulator),
	// SourceCMCD (a real player's CMCD v2 reports, through the collector) or
	// SourceBeacon (contract events a custom player or SDK posted to the
	// collector). Optional on the wire: records written before it existed, or
	// by other producers, have none ("", shown as "unknown").
	Source string

	// Type-specific fields. Which ones are required for which type is
	// written in docs/events.md and enforced by Validate.
	FirstFrame  bool    // play: this is the session's first frame; JSON has startup_ms
	StartupMS   int     // play on the first frame: time from start to first frame
	StallMS     int     // buffer_end: how long the stall lasted
	PrevBitrate int     // bitrate_change: the rendition before the change
	From        float64 // seek: JSON "from_seconds"
	ErrorCode   string  // error
	Fatal       bool    // error: whether it ends the session
	StopReason  string  // stop
}
