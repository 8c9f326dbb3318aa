// Package cmcd parses and validates one CMCD v2 event report (CTA-5004-B):
// one line of a POST body, an RFC 8941 structured-field dictionary. It is
// pure: no I/O, no clock. The collector's HTTP edge uses it to refuse bad
// reports with a reason, and the sessionizer to read the canonical line the
// edge wrote to Kafka.
//
// Only the keys the collector maps are kept (Report); the rest are ignored,
// as CMCD asks of receivers. The canonical line (AppendLine) holds exactly
// those keys, in alphabetical order, so Parse(AppendLine(r)) == r.
//
// The syntax is parsed by github.com/dunglas/httpsfv (a maintained RFC 8941
// parser); this package adds what CMCD and a hostile internet need: types
// per key, CMCD's own value sizes, bounded numbers, and refusing control
// characters, non-ASCII bytes and characters that only a script payload
// needs.
package cmcd

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Limits CMCD sets itself (CTA-5004-B) and the collector's own bounds.
const (
	MaxSID        = 64  // sid: "maximum length 64 characters"
	MaxCID        = 128 // cid: "maximum length 128 characters"
	MaxCustom     = 64  // custom key values: "maximum length 64 characters"
	MaxErrorCodes = 8   // ec items kept; more is not a player, it is a payload
	MaxKeys       = 64  // CMCD defines about 40 keys
	// MaxSN bounds sn so that the event sequence number derived from it
	// (sn × 16 + index) stays far inside JavaScript's safe integers.
	MaxSN = 1<<32 - 1
	// MaxDurationMS bounds msd and bsd: a day.
	MaxDurationMS = 24 * 3600 * 1000
	// MaxBitrate bounds br, in kbps (10 Gbit/s).
	MaxBitrate = 10_000_000
	// MaxTS bounds ts and pt (ms): JavaScript's safe integers.
	MaxTS = 1<<53 - 1
)

// Reasons a report is refused; metric labels and the "reason" of a 400
// answer. Reasons lists them all.
const (
	ReasonNotCMCD      = "not_cmcd"            // not an RFC 8941 dictionary
	ReasonControl      = "control_chars"       // control characters or bytes beyond ASCII
	ReasonLineTooLong  = "line_too_long"       // longer than the configured line limit
	ReasonTooManyKeys  = "too_many_keys"       // more than MaxKeys keys
	ReasonVersion      = "unsupported_version" // v is not 2
	ReasonMissing      = "missing_field"       // sid, sn, ts or e absent
	ReasonWrongType    = "wrong_type"          // e.g. sid=5, sta="p"
	ReasonValueTooLong = "value_too_long"      // sid > 64, cid > 128, custom > 64
	ReasonInvalid      = "invalid_value"       // unknown sta, negative sn, ...
	ReasonUnsafe       = "unsafe_chars"        // < > " ' ` \ in a string: markup, not an id
)

// Reasons lists every reason Parse can return, so that metrics can be
// registered at zero.
func Reasons() []string {
	return []string{ReasonNotCMCD, ReasonControl, ReasonLineTooLong, ReasonTooManyKeys, ReasonVersion,
		ReasonMissing, ReasonWrongType, ReasonValueTooLong, ReasonInvalid, ReasonUnsafe}
}

// Error is why a report was refused.
type Error struct {
	Reason string // one of the Reason* constants
	Key    string // the CMCD key at fault, when there is one
	Detail string
}

func (e *Error) Error() string {
	s := "cmcd: " + e.Reason
	if e.Key != "" {
		s += " (" + e.Key + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ReasonOf returns the reason of a Parse error, "other" for anything else.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "other"
}

func fail(reason, key, detail string) error { return &Error{Reason: reason, Key: key, Detail: detail} }

// Player states (sta).
const (
	StateStarting    = 's'
	StatePlaying     = 'p'
	StateSeeking     = 'k'
	StateRebuffering = 'r'
	StatePaused      = 'a'
	StateWaiting     = 'w'
	StateEnded       = 'e'
	StateFatal       = 'f'
	StateQuit        = 'q'
	StatePreloading  = 'd'
)

// Report is one CMCD v2 event report, reduced to the keys the collector
// maps. Absent numbers are -1.
type Report struct {
	SID    string   // sid
	SN     int64    // sn, ≥ 0
	TS     int64    // ts, Unix ms
	Event  string   // e: ps, e, t, bc, ... (a token; unknown types are kept and ignored by the mapping)
	State  byte     // sta: one of the State* letters, 0 when absent
	CID    string   // cid, "" when absent
	BR     int64    // br: kbps of the selected representation (first item of an inner list), -1
	MSD    int64    // msd: media start delay, ms, -1
	BSD    int64    // bsd: buffer starvation duration, ms, -1
	PT     int64    // pt: playhead, ms, -1
	EC     []string // ec: player error codes
	CDN    string   // cdn
	UserID string   // the configured custom key (Options.UserIDKey), "" when absent
}

// Options configure Parse.
type Options struct {
	// MaxLine is the longest line accepted, in bytes (0: 4096).
	MaxLine int
	// UserIDKey is the custom CMCD key carrying the viewer's id
	// (e.g. "com.example-uid"); empty: none.
	UserIDKey string
}

var validStates = "skprawefqd"

// Parse validates line (one report, without its line break) and returns
// what the collector keeps of it.
func Parse(line []byte, opts Options) (Report, error) {
	return ParseString(string(line), opts)
}

// ParseString is Parse for a line already in a string: the report's
// strings point into it, so a caller holding a whole body as one string
// parses its lines without copying them.
func ParseString(line string, opts Options) (Report, error) {
	d := dicts.Get().(*dict)
	r, err := parse(line, opts, d)
	dicts.Put(d)
	return r, err
}

// dicts recycles the parser's scratch space: the edge parses every report
// of every request.
var dicts = sync.Pool{New: func() any { return &dict{members: make([]member, 0, 16), items: make([]value, 0, 8)} }}

func parse(line string, opts Options, d *dict) (Report, error) {
	r := Report{SN: -1, TS: -1, BR: -1, MSD: -1, BSD: -1, PT: -1}
	maxLine := opts.MaxLine
	if maxLine <= 0 {
		maxLine = 4096
	}
	if len(line) > maxLine {
		return r, fail(ReasonLineTooLong, "", strconv.Itoa(len(line))+" bytes")
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return r, fail(ReasonControl, "", "byte 0x"+strconv.FormatUint(uint64(c), 16))
		}
	}
	if err := parseDict(line, d); err != nil || len(d.members) == 0 {
		detail := "empty"
		if err != nil {
			detail = err.Error()
		}
		return r, fail(ReasonNotCMCD, "", detail)
	}
	if len(d.members) > MaxKeys {
		return r, fail(ReasonTooManyKeys, "", strconv.Itoa(len(d.members))+" keys")
	}
	version := int64(-1)
	for i := range d.members {
		k, m := d.members[i].key, &d.members[i].val
		var err error
		switch k {
		case "v":
			version, err = integer(m, k, 0, math.MaxInt32)
			if err == nil && version != 2 {
				return r, fail(ReasonVersion, k, "v="+strconv.FormatInt(version, 10)+", only CMCD v2 event reports are accepted")
			}
		case "sid":
			r.SID, err = str(m, k, MaxSID, false)
		case "sn":
			r.SN, err = integer(m, k, 0, MaxSN)
		case "ts":
			r.TS, err = integer(m, k, 1, MaxTS)
		case "e":
			r.Event, err = token(m, k, 8)
		case "sta":
			var s string
			if s, err = token(m, k, 1); err == nil {
				if len(s) != 1 || !strings.Contains(validStates, s) {
					return r, fail(ReasonInvalid, k, "unknown player state "+strconv.Quote(s))
				}
				r.State = s[0]
			}
		case "cid":
			r.CID, err = str(m, k, MaxCID, false)
		case "br":
			r.BR, err = number(m, d, k, 0, MaxBitrate)
		case "msd":
			r.MSD, err = integer(m, k, 0, MaxDurationMS)
		case "bsd":
			r.BSD, err = number(m, d, k, 0, MaxDurationMS)
		case "pt":
			r.PT, err = number(m, d, k, 0, MaxTS)
		case "ec":
			r.EC, err = strList(m, d, k)
		case "cdn":
			r.CDN, err = str(m, k, MaxCustom, false)
		default:
			if opts.UserIDKey != "" && k == opts.UserIDKey {
				r.UserID, err = str(m, k, MaxCustom, true)
			}
		}
		if err != nil {
			return r, err
		}
	}
	return r, complete(r, version)
}

// complete says what a report lacks: a version (v1 request mode is not
// accepted), or one of the keys every v2 event report carries.
func complete(r Report, version int64) error {
	switch {
	case version < 0:
		return fail(ReasonVersion, "v", "absent: CMCD v1 (request mode) is not accepted, only v2 event reports")
	case r.SID == "":
		return fail(ReasonMissing, "sid", "")
	case r.SN < 0:
		return fail(ReasonMissing, "sn", "")
	case r.TS < 0:
		return fail(ReasonMissing, "ts", "")
	case r.Event == "":
		return fail(ReasonMissing, "e", "")
	}
	return nil
}

// safe rejects what a script or markup payload needs and no id does.
func safe(s, key string) error {
	if i := strings.IndexAny(s, "<>\"'`\\"); i >= 0 {
		return fail(ReasonUnsafe, key, "character "+strconv.QuoteRune(rune(s[i])))
	}
	return nil
}

func str(v *value, key string, maxLen int, tokenOK bool) (string, error) {
	switch {
	case v.kind == kindList:
		return "", fail(ReasonWrongType, key, "an inner list where an item is expected")
	case v.kind == kindToken && !tokenOK:
		return "", fail(ReasonWrongType, key, "a token where a string is expected")
	case v.kind != kindString && v.kind != kindToken:
		return "", fail(ReasonWrongType, key, "want a string")
	case v.s == "":
		return "", fail(ReasonInvalid, key, "empty")
	case len(v.s) > maxLen:
		return "", fail(ReasonValueTooLong, key, strconv.Itoa(len(v.s))+" characters, at most "+strconv.Itoa(maxLen))
	}
	return v.s, safe(v.s, key)
}

func token(v *value, key string, maxLen int) (string, error) {
	switch {
	case v.kind == kindList:
		return "", fail(ReasonWrongType, key, "an inner list where an item is expected")
	case v.kind != kindToken:
		return "", fail(ReasonWrongType, key, "want a token")
	case len(v.s) > maxLen:
		return "", fail(ReasonValueTooLong, key, strconv.Itoa(len(v.s))+" characters, at most "+strconv.Itoa(maxLen))
	}
	return v.s, nil
}

func integer(v *value, key string, lo, hi int64) (int64, error) {
	switch {
	case v.kind == kindList:
		return 0, fail(ReasonWrongType, key, "an inner list where an item is expected")
	case v.kind != kindInt:
		return 0, fail(ReasonWrongType, key, "want an integer")
	case v.i < lo || v.i > hi:
		return 0, fail(ReasonInvalid, key, strconv.FormatInt(v.i, 10)+" out of range")
	}
	return v.i, nil
}

// number takes an integer or decimal (rounded), or the first item of an
// inner list of them: players send br, bl and mtp as inner lists, one item
// per object type.
func number(v *value, d *dict, key string, lo, hi int64) (int64, error) {
	if v.kind == kindList {
		if v.n == 0 {
			return 0, fail(ReasonInvalid, key, "empty inner list")
		}
		if v.n > MaxErrorCodes {
			return 0, fail(ReasonValueTooLong, key, strconv.Itoa(v.n)+" items")
		}
		v = &d.items[v.first]
	}
	var n int64
	switch v.kind {
	case kindInt:
		n = v.i
	case kindDecimal:
		n = int64(math.Round(v.f))
	default:
		return 0, fail(ReasonWrongType, key, "want a number")
	}
	if n < lo || n > hi {
		return 0, fail(ReasonInvalid, key, strconv.FormatInt(n, 10)+" out of range")
	}
	return n, nil
}

// strList takes ec: an inner list of strings (or one string).
func strList(v *value, d *dict, key string) ([]string, error) {
	items := []value{*v}
	if v.kind == kindList {
		items = d.items[v.first : v.first+v.n]
	}
	if len(items) > MaxErrorCodes {
		return nil, fail(ReasonValueTooLong, key, strconv.Itoa(len(items))+" error codes, at most "+strconv.Itoa(MaxErrorCodes))
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it.kind != kindString && it.kind != kindToken {
			return nil, fail(ReasonWrongType, key, "want strings")
		}
		if it.s == "" {
			continue
		}
		if len(it.s) > MaxCustom {
			return nil, fail(ReasonValueTooLong, key, strconv.Itoa(len(it.s))+" characters, at most "+strconv.Itoa(MaxCustom))
		}
		if err := safe(it.s, key); err != nil {
			return nil, err
		}
		out = append(out, it.s)
	}
	return out, nil
}

// ValidKey reports whether k can be a CMCD custom key: an RFC 8941 key
// (lower case letters, digits, _ - . *, starting with a letter) with the
// hyphenated prefix CMCD requires of custom keys (e.g. com.example-uid).
func ValidKey(k string) bool {
	if k == "" || len(k) > 64 || k[0] < 'a' || k[0] > 'z' || !strings.Contains(k, "-") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

// canonicalKeys are the keys AppendLine writes, in alphabetical order.
var canonicalKeys = [...]string{"br", "bsd", "cdn", "cid", "e", "ec", "msd", "pt", "sid", "sn", "sta", "ts", "v"}

// AppendLine appends the canonical form of r: the keys it holds, in
// alphabetical order (the custom user-id key under userIDKey, in its
// place), as an RFC 8941 dictionary. Parse of the result with the same key
// gives r back.
func (r *Report) AppendLine(dst []byte, userIDKey string) []byte {
	start := len(dst)
	custom := userIDKey != "" && r.UserID != ""
	for _, k := range canonicalKeys {
		if custom && userIDKey < k {
			dst = appendKey(dst, start, userIDKey)
			dst = appendString(dst, r.UserID)
			custom = false
		}
		dst = r.appendMember(dst, start, k)
	}
	if custom {
		dst = appendKey(dst, start, userIDKey)
		dst = appendString(dst, r.UserID)
	}
	return dst
}

func appendKey(dst []byte, start int, k string) []byte {
	if len(dst) > start {
		dst = append(dst, ',')
	}
	dst = append(dst, k...)
	return append(dst, '=')
}

func (r *Report) appendMember(dst []byte, start int, k string) []byte {
	var n int64 = -1
	var s string
	switch k {
	case "br":
		n = r.BR
	case "bsd":
		n = r.BSD
	case "msd":
		n = r.MSD
	case "pt":
		n = r.PT
	case "sn":
		n = r.SN
	case "ts":
		n = r.TS
	case "v":
		n = 2
	case "cdn":
		s = r.CDN
	case "cid":
		s = r.CID
	case "sid":
		s = r.SID
	case "e":
		if r.Event != "" {
			dst = appendKey(dst, start, k)
			dst = append(dst, r.Event...)
		}
		return dst
	case "sta":
		if r.State != 0 {
			dst = appendKey(dst, start, k)
			dst = append(dst, r.State)
		}
		return dst
	case "ec":
		if len(r.EC) > 0 {
			dst = appendKey(dst, start, k)
			dst = append(dst, '(')
			for i, c := range r.EC {
				if i > 0 {
					dst = append(dst, ' ')
				}
				dst = appendString(dst, c)
			}
			dst = append(dst, ')')
		}
		return dst
	}
	switch {
	case n >= 0:
		dst = appendKey(dst, start, k)
		dst = strconv.AppendInt(dst, n, 10)
	case s != "":
		dst = appendKey(dst, start, k)
		dst = appendString(dst, s)
	}
	return dst
}

// appendString writes an RFC 8941 sf-string. Parse refuses " and \ in the
// values it keeps, but escaping keeps the output valid for any input.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}
