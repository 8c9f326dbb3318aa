package event

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Sentinel errors, one per reason a record is rejected. Test with errors.Is;
// ReasonOf turns any decode error into a short metric label.
var (
	ErrTooLarge           = errors.New("record larger than 64 KiB")
	ErrSyntax             = errors.New("not a JSON object")
	ErrMissingField       = errors.New("missing field")
	ErrWrongType          = errors.New("wrong type")
	ErrUnknownType        = errors.New("unknown event_type")
	ErrInvalidValue       = errors.New("invalid value")
	ErrUnsupportedVersion = errors.New("unsupported schema version")
)

var reasons = map[error]string{
	ErrTooLarge:           "too_large",
	ErrSyntax:             "not_json",
	ErrMissingField:       "missing_field",
	ErrWrongType:          "wrong_type",
	ErrUnknownType:        "unknown_type",
	ErrInvalidValue:       "invalid_value",
	ErrUnsupportedVersion: "unsupported_version",
}

// Reasons lists every label ReasonOf can return, so metrics can be
// pre-registered at zero.
func Reasons() []string {
	return []string{"too_large", "not_json", "missing_field", "wrong_type", "unknown_type", "invalid_value", "unsupported_version"}
}

// ReasonOf returns the metric label for a decode error ("not_json",
// "missing_field", ...), or "other" for an error not from this package.
func ReasonOf(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		if r, ok := reasons[de.Err]; ok {
			return r
		}
	}
	return "other"
}

// DecodeError says why a record was rejected and, where it applies, which
// field was at fault.
type DecodeError struct {
	Err    error  // one of the Err* sentinels
	Field  string // JSON field name, empty when the record as a whole is bad
	Detail string // human-readable specifics
}

func (e *DecodeError) Error() string {
	s := "event: " + e.Err.Error()
	if e.Field != "" {
		s += " " + strconv.Quote(e.Field)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

func fail(err error, field, detail string) error {
	return &DecodeError{Err: err, Field: field, Detail: detail}
}

// field bits, for presence tracking.
const (
	fV uint32 = 1 << iota
	fEventID
	fSessionID
	fSeq
	fStream
	fUserID
	fMovieID
	fEventType
	fPosition
	fBitrate
	fDevice
	fTS
	fStartupMS
	fStallMS
	fPrevBitrate
	fFrom
	fErrorCode
	fFatal
	fStopReason
)

type requiredField struct {
	bit  uint32
	name string
}

// Required lists the fields every event carries, in wire order.
var requiredCommon = []requiredField{
	{fV, "v"}, {fEventID, "event_id"}, {fSessionID, "session_id"}, {fSeq, "seq"},
	{fStream, "stream"}, {fUserID, "user_id"}, {fMovieID, "movie_id"},
	{fEventType, "event_type"}, {fPosition, "position_seconds"},
	{fBitrate, "bitrate_kbps"}, {fDevice, "device"}, {fTS, "ts"},
}

var requiredByType = [numTypes][]requiredField{
	BufferEnd:     {{fStallMS, "stall_ms"}},
	BitrateChange: {{fPrevBitrate, "prev_bitrate_kbps"}},
	Seek:          {{fFrom, "from_seconds"}},
	Error:         {{fErrorCode, "error_code"}, {fFatal, "fatal"}},
	Stop:          {{fStopReason, "stop_reason"}},
}

// RequiredFields returns the JSON names of the fields an event of type t must
// carry. The schema file states the same; a test holds them equal.
func RequiredFields(t Type) []string {
	var out []string
	for _, f := range requiredCommon {
		out = append(out, f.name)
	}
	if t < numTypes {
		for _, f := range requiredByType[t] {
			out = append(out, f.name)
		}
	}
	return out
}

// Decode parses and validates one record value into e, overwriting it.
// Unknown fields are ignored so that producers can add context fields
// without breaking older consumers; everything else is checked.
func Decode(b []byte, e *Event) error {
	var d decoder
	return d.decode(b, e)
}

// Decoder decodes like Decode but keeps state between records: its scratch
// buffer, and the strings of low-cardinality fields (device, stream,
// movie_id, network, country, cdn, source, stop_reason, error_code), so that a hot
// consumer allocates only for the ids that are new in every event. It is
// not safe for concurrent use: keep one per partition.
type Decoder struct {
	d    decoder
	strs [internSlots]string
}

const internSlots = 4096

// Decode parses and validates one record value into e.
func (x *Decoder) Decode(b []byte, e *Event) error {
	x.d.intern = &x.strs
	return x.d.decode(b, e)
}

func (d *decoder) decode(b []byte, e *Event) error {
	*e = Event{}
	if len(b) > MaxRecordBytes {
		return fail(ErrTooLarge, "", strconv.Itoa(len(b))+" bytes")
	}
	d.b, d.i = b, 0
	seen, err := d.object(e)
	if err != nil {
		return err
	}
	for _, f := range requiredCommon {
		if seen&f.bit == 0 {
			return fail(ErrMissingField, f.name, "")
		}
	}
	for _, f := range requiredByType[e.Type] {
		if seen&f.bit == 0 {
			return fail(ErrMissingField, f.name, "required for "+e.Type.String())
		}
	}
	e.FirstFrame = e.Type == Play && seen&fStartupMS != 0
	return nil
}

type decoder struct {
	b      []byte
	i      int
	buf    []byte // scratch for unescaping
	intern *[internSlots]string
}

// internMax is the longest string worth interning.
const internMax = 64

// str returns s as a string, reusing an earlier identical string when the
// decoder interns.
func (d *decoder) str(s []byte) string {
	if d.intern == nil || len(s) > internMax {
		return string(s)
	}
	h := uint32(2166136261)
	for _, c := range s {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &d.intern[h%internSlots]
	if *slot == string(s) {
		return *slot
	}
	*slot = string(s)
	return *slot
}

func (d *decoder) ws() {
	b, i := d.b, d.i
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	d.i = i
}

func (d *decoder) syntax(what string) error {
	return fail(ErrSyntax, "", what+" at offset "+strconv.Itoa(d.i))
}

func (d *decoder) object(e *Event) (uint32, error) {
	var seen uint32
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return 0, d.syntax("expected '{'")
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return 0, d.end()
	}
	for {
		d.ws()
		key, err := d.rawString()
		if err != nil {
			return 0, err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return 0, d.syntax("expected ':'")
		}
		d.i++
		d.ws()
		bit, err := d.field(key, e)
		if err != nil {
			return 0, err
		}
		seen |= bit
		d.ws()
		if d.i >= len(d.b) {
			return 0, d.syntax("unexpected end")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return seen, d.end()
		default:
			return 0, d.syntax("expected ',' or '}'")
		}
	}
}

func (d *decoder) end() error {
	d.ws()
	if d.i != len(d.b) {
		return d.syntax("trailing data")
	}
	return nil
}

// field decodes the value of one key into e and returns its presence bit.
func (d *decoder) field(key []byte, e *Event) (uint32, error) {
	var err error
	// Field names in errors are literals: passing key along would make every
	// key escape to the heap.
	switch string(key) {
	case "v":
		var v int64
		if v, err = d.int("v"); err == nil && v != Version {
			return 0, fail(ErrUnsupportedVersion, "v", strconv.FormatInt(v, 10))
		}
		e.V = int(v)
		return fV, err
	case "event_id":
		e.EventID, err = d.nonEmpty("event_id")
		return fEventID, err
	case "session_id":
		e.SessionID, err = d.nonEmpty("session_id")
		return fSessionID, err
	case "seq":
		var v int64
		if v, err = d.nonNegInt("seq"); err == nil && v == 0 {
			err = fail(ErrInvalidValue, "seq", "starts at 1")
		}
		e.Seq = uint64(v)
		return fSeq, err
	case "stream":
		e.Stream, err = d.nonEmptyInterned("stream")
		return fStream, err
	case "user_id":
		e.UserID, err = d.nonEmpty("user_id")
		return fUserID, err
	case "movie_id":
		e.MovieID, err = d.nonEmptyInterned("movie_id")
		return fMovieID, err
	case "event_type":
		var s []byte
		if s, err = d.stringBytes("event_type"); err != nil {
			return 0, err
		}
		if e.Type = ParseType(string(s)); e.Type == TypeUnknown {
			return 0, fail(ErrUnknownType, "event_type", strconv.Quote(truncate(string(s))))
		}
		return fEventType, nil
	case "position_seconds":
		e.Position, err = d.nonNegFloat("position_seconds")
		return fPosition, err
	case "bitrate_kbps":
		var v int64
		v, err = d.nonNegInt("bitrate_kbps")
		e.Bitrate = int(v)
		return fBitrate, err
	case "device":
		e.Device, err = d.nonEmptyInterned("device")
		return fDevice, err
	case "ts":
		var s []byte
		if s, err = d.stringBytes("ts"); err != nil {
			return 0, err
		}
		t, ok := parseCanonicalTime(s)
		var perr error
		if !ok {
			t, perr = time.Parse(time.RFC3339Nano, string(s))
		}
		if perr != nil {
			return 0, fail(ErrInvalidValue, "ts", "not RFC 3339: "+strconv.Quote(truncate(string(s))))
		}
		e.TS = t.UTC()
		return fTS, nil
	case "network":
		e.Network, err = d.interned("network")
		return 0, err
	case "country":
		e.Country, err = d.interned("country")
		return 0, err
	case "cdn":
		e.CDN, err = d.interned("cdn")
		return 0, err
	case "source":
		if e.Source, err = d.interned("source"); err != nil {
			return 0, err
		}
		for _, s := range Sources {
			if s == e.Source {
				return 0, nil
			}
		}
		return 0, fail(ErrInvalidValue, "source", strconv.Quote(truncate(e.Source)))
	case "startup_ms":
		var v int64
		v, err = d.nonNegInt("startup_ms")
		e.StartupMS = int(v)
		return fStartupMS, err
	case "stall_ms":
		var v int64
		v, err = d.nonNegInt("stall_ms")
		e.StallMS = int(v)
		return fStallMS, err
	case "prev_bitrate_kbps":
		var v int64
		v, err = d.nonNegInt("prev_bitrate_kbps")
		e.PrevBitrate = int(v)
		return fPrevBitrate, err
	case "from_seconds":
		e.From, err = d.nonNegFloat("from_seconds")
		return fFrom, err
	case "error_code":
		e.ErrorCode, err = d.nonEmptyInterned("error_code")
		return fErrorCode, err
	case "fatal":
		e.Fatal, err = d.bool("fatal")
		return fFatal, err
	case "stop_reason":
		if e.StopReason, err = d.interned("stop_reason"); err != nil {
			return 0, err
		}
		for _, r := range StopReasons {
			if r == e.StopReason {
				return fStopReason, nil
			}
		}
		return 0, fail(ErrInvalidValue, "stop_reason", strconv.Quote(truncate(e.StopReason)))
	default:
		return 0, d.skip(0)
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (d *decoder) wrongType(field, want string) error {
	return fail(ErrWrongType, field, "want "+want)
}

// stringBytes returns the unescaped string value; the slice is only valid
// until the next call.
func (d *decoder) stringBytes(field string) ([]byte, error) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		if err := d.skip(0); err != nil {
			return nil, err
		}
		return nil, d.wrongType(field, "string")
	}
	return d.rawString()
}

func (d *decoder) interned(field string) (string, error) {
	s, err := d.stringBytes(field)
	if err != nil {
		return "", err
	}
	return d.str(s), nil
}

func (d *decoder) nonEmptyInterned(field string) (string, error) {
	s, err := d.stringBytes(field)
	if err != nil {
		return "", err
	}
	if len(s) == 0 {
		return "", fail(ErrInvalidValue, field, "must not be empty")
	}
	return d.str(s), nil
}

func (d *decoder) nonEmpty(field string) (string, error) {
	s, err := d.stringBytes(field)
	if err == nil && len(s) == 0 {
		err = fail(ErrInvalidValue, field, "must not be empty")
	}
	return string(s), err
}

// rawString reads a JSON string at d.i, unescaping into d.buf only when the
// string has escapes or invalid UTF-8.
func (d *decoder) rawString() ([]byte, error) {
	b, i := d.b, d.i
	if i >= len(b) || b[i] != '"' {
		return nil, d.syntax("expected string")
	}
	i++
	start := i
	// Locals, not fields: this loop is the decoder's hottest, and most of a
	// record is plain ASCII inside strings.
	for i < len(b) && plainASCII[b[i]] {
		i++
	}
	if i < len(b) && b[i] == '"' {
		d.i = i + 1
		return b[start:i], nil
	}
	d.i = i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.slowString(start)
		case c < 0x20:
			return nil, d.syntax("control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				return d.slowString(start)
			}
			d.i += size
		default:
			d.i++
		}
	}
	return nil, d.syntax("unterminated string")
}

func (d *decoder) slowString(start int) ([]byte, error) {
	d.buf = append(d.buf[:0], d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return d.buf, nil
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return nil, d.syntax("unterminated escape")
			}
			esc := d.b[d.i+1]
			d.i += 2
			switch esc {
			case '"', '\\', '/':
				d.buf = append(d.buf, esc)
			case 'b':
				d.buf = append(d.buf, '\b')
			case 'f':
				d.buf = append(d.buf, '\f')
			case 'n':
				d.buf = append(d.buf, '\n')
			case 'r':
				d.buf = append(d.buf, '\r')
			case 't':
				d.buf = append(d.buf, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return nil, d.syntax("bad \\u escape")
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by a low one is one rune;
					// anything else is replaced, as encoding/json does.
					r2 := rune(-1)
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						var ok2 bool
						if r2, ok2 = d.hex4(); !ok2 {
							return nil, d.syntax("bad \\u escape")
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							d.buf = utf8.AppendRune(d.buf, dec)
							continue
						}
						d.i = save
					}
					r = utf8.RuneError
				}
				d.buf = utf8.AppendRune(d.buf, r)
			default:
				return nil, d.syntax("bad escape")
			}
		case c < 0x20:
			return nil, d.syntax("control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				d.buf = utf8.AppendRune(d.buf, utf8.RuneError)
			} else {
				d.buf = append(d.buf, d.b[d.i:d.i+size]...)
			}
			d.i += size
		default:
			d.buf = append(d.buf, c)
			d.i++
		}
	}
	return nil, d.syntax("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// plainASCII marks the bytes that stand for themselves in a JSON string:
// printable ASCII other than the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// maxSafeInt keeps integers exact in JavaScript, where the dashboard reads them.
const maxSafeInt = 1<<53 - 1

// number scans a JSON number literal and reports whether it is an integer
// (no fraction or exponent).
func (d *decoder) number() (lit []byte, integer bool, err error) {
	start := d.i
	integer = true
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && '1' <= d.b[d.i] && d.b[d.i] <= '9':
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
	default:
		return nil, false, d.syntax("bad number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		integer = false
		d.i++
		if d.i >= len(d.b) || d.b[d.i] < '0' || d.b[d.i] > '9' {
			return nil, false, d.syntax("bad number")
		}
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		integer = false
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.i >= len(d.b) || d.b[d.i] < '0' || d.b[d.i] > '9' {
			return nil, false, d.syntax("bad number")
		}
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
	}
	return d.b[start:d.i], integer, nil
}

func (d *decoder) isNumberStart() bool {
	return d.i < len(d.b) && (d.b[d.i] == '-' || ('0' <= d.b[d.i] && d.b[d.i] <= '9'))
}

func (d *decoder) int(field string) (int64, error) {
	if !d.isNumberStart() {
		if err := d.skip(0); err != nil {
			return 0, err
		}
		return 0, d.wrongType(field, "integer")
	}
	lit, integer, err := d.number()
	if err != nil {
		return 0, err
	}
	if !integer {
		return 0, d.wrongType(field, "integer")
	}
	v, perr := strconv.ParseInt(string(lit), 10, 64)
	if perr != nil || v > maxSafeInt || v < -maxSafeInt {
		return 0, fail(ErrInvalidValue, field, "out of range")
	}
	return v, nil
}

func (d *decoder) nonNegInt(field string) (int64, error) {
	v, err := d.int(field)
	if err == nil && v < 0 {
		err = fail(ErrInvalidValue, field, "must not be negative")
	}
	return v, err
}

func (d *decoder) nonNegFloat(field string) (float64, error) {
	if !d.isNumberStart() {
		if err := d.skip(0); err != nil {
			return 0, err
		}
		return 0, d.wrongType(field, "number")
	}
	lit, _, err := d.number()
	if err != nil {
		return 0, err
	}
	f, perr := strconv.ParseFloat(string(lit), 64)
	if perr != nil {
		return 0, fail(ErrInvalidValue, field, "out of range")
	}
	if f < 0 {
		return 0, fail(ErrInvalidValue, field, "must not be negative")
	}
	return f, nil
}

func (d *decoder) bool(field string) (bool, error) {
	switch {
	case d.lit("true"):
		return true, nil
	case d.lit("false"):
		return false, nil
	}
	if err := d.skip(0); err != nil {
		return false, err
	}
	return false, d.wrongType(field, "boolean")
}

func (d *decoder) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

// maxDepth bounds nesting in ignored values so a hostile record cannot blow
// the stack.
const maxDepth = 64

// skip validates and steps over any JSON value.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return d.syntax("nested too deeply")
	}
	d.ws()
	if d.i >= len(d.b) {
		return d.syntax("unexpected end")
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, err := d.rawString()
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		d.i++
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == closer {
			d.i++
			return nil
		}
		for {
			if c == '{' {
				d.ws()
				if _, err := d.rawString(); err != nil {
					return err
				}
				d.ws()
				if d.i >= len(d.b) || d.b[d.i] != ':' {
					return d.syntax("expected ':'")
				}
				d.i++
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.i >= len(d.b) {
				return d.syntax("unexpected end")
			}
			if d.b[d.i] == ',' {
				d.i++
				continue
			}
			if d.b[d.i] == closer {
				d.i++
				return nil
			}
			return d.syntax("expected ',' or closing bracket")
		}
	case c == '-' || ('0' <= c && c <= '9'):
		_, _, err := d.number()
		return err
	case d.lit("true"), d.lit("false"), d.lit("null"):
		return nil
	default:
		return d.syntax("unexpected character")
	}
}

// parseCanonicalTime parses the form Playpulse writes,
// "2006-01-02T15:04:05.000Z", without time.Parse's allocations; anything
// else goes to time.Parse.
func parseCanonicalTime(s []byte) (time.Time, bool) {
	if len(s) != len(TimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
		s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return time.Time{}, false
	}
	num := func(b []byte) (int, bool) {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	var v [7]int
	for i, r := range [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 23}} {
		n, ok := num(s[r[0]:r[1]])
		if !ok {
			return time.Time{}, false
		}
		v[i] = n
	}
	if v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > daysIn(v[1], v[0]) || v[3] > 23 || v[4] > 59 || v[5] > 59 {
		return time.Time{}, false // let time.Parse produce the error
	}
	return time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], v[6]*1e6, time.UTC), true
}

func daysIn(month, year int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
