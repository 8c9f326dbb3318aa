package event

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeLayout is the wire form of ts: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// AppendJSON appends e as one JSON object to dst and returns the extended
// buffer. It does not allocate when dst has room. Field order is fixed so the
// output is byte-for-byte reproducible.
func (e *Event) AppendJSON(dst []byte) []byte {
	v := e.V
	if v == 0 {
		v = Version
	}
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(v), 10)
	dst = appendStringField(dst, "event_id", e.EventID)
	dst = appendStringField(dst, "session_id", e.SessionID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = appendStringField(dst, "stream", e.Stream)
	dst = appendStringField(dst, "user_id", e.UserID)
	dst = appendStringField(dst, "movie_id", e.MovieID)
	dst = appendStringField(dst, "event_type", e.Type.String())
	dst = append(dst, `,"position_seconds":`...)
	dst = appendFloat(dst, e.Position)
	dst = append(dst, `,"bitrate_kbps":`...)
	dst = strconv.AppendInt(dst, int64(e.Bitrate), 10)
	dst = appendStringField(dst, "device", e.Device)
	dst = append(dst, `,"ts":"`...)
	dst = appendTime(dst, e.TS)
	dst = append(dst, '"')
	if e.Network != "" {
		dst = appendStringField(dst, "network", e.Network)
	}
	if e.Country != "" {
		dst = appendStringField(dst, "country", e.Country)
	}
	if e.CDN != "" {
		dst = appendStringField(dst, "cdn", e.CDN)
	}
	if e.Source != "" {
		dst = appendStringField(dst, "source", e.Source)
	}
	switch e.Type {
	case Play:
		if e.FirstFrame {
			dst = append(dst, `,"startup_ms":`...)
			dst = strconv.AppendInt(dst, int64(e.StartupMS), 10)
		}
	case BufferEnd:
		dst = append(dst, `,"stall_ms":`...)
		dst = strconv.AppendInt(dst, int64(e.StallMS), 10)
	case BitrateChange:
		dst = append(dst, `,"prev_bitrate_kbps":`...)
		dst = strconv.AppendInt(dst, int64(e.PrevBitrate), 10)
	case Seek:
		dst = append(dst, `,"from_seconds":`...)
		dst = appendFloat(dst, e.From)
	case Error:
		dst = appendStringField(dst, "error_code", e.ErrorCode)
		dst = append(dst, `,"fatal":`...)
		dst = strconv.AppendBool(dst, e.Fatal)
	case Stop:
		dst = appendStringField(dst, "stop_reason", e.StopReason)
	}
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler with the same output as AppendJSON.
func (e *Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 512)), nil
}

// UnmarshalJSON implements json.Unmarshaler with full validation.
func (e *Event) UnmarshalJSON(b []byte) error {
	return Decode(b, e)
}

// Millis truncates t to the millisecond precision of the wire format, so
// that an event survives an encode/decode round trip unchanged.
func Millis(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func appendStringField(dst []byte, name, v string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return AppendString(dst, v)
}

func appendFloat(dst []byte, f float64) []byte {
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does; U+2028 and U+2029 are escaped so the output is also
// safe inside JavaScript source.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendTime writes t in TimeLayout. It is AppendFormat specialised to the
// one layout, which costs a few hundred nanoseconds less per event.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	ms := t.Nanosecond() / 1e6
	return append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}
