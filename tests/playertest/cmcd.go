package playertest

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Report is one CMCD v2 report: an RFC 8941 dictionary, one line of a POST body
// (the tests read them back from the collector's intake topic). This parser
// is the tests' own, strict, so that a report that is not valid
// structured-field syntax fails here; the collector has its own.
type Report struct {
	Line   string
	Keys   []string // in the order sent
	Values map[string]Value
}

// Value is a dictionary member: an item or an inner list, with parameters.
type Value struct {
	Kind   Kind
	Int    int64
	Dec    float64
	Str    string // string, token or base64-decoded bytes
	Bool   bool
	List   []Value // inner list items
	Params map[string]Value
}

// Kind is the RFC 8941 type of a value.
type Kind int

const (
	KindInt Kind = iota
	KindDec
	KindString
	KindToken
	KindBytes
	KindBool
	KindList
)

func (k Kind) String() string {
	return [...]string{"integer", "decimal", "string", "token", "bytes", "boolean", "inner list"}[k]
}

// Has reports whether the report carries key.
func (r Report) Has(key string) bool { _, ok := r.Values[key]; return ok }

// Str is the string or token value of key, "" when absent.
func (r Report) Str(key string) string {
	v, ok := r.Values[key]
	if !ok || (v.Kind != KindString && v.Kind != KindToken) {
		return ""
	}
	return v.Str
}

// Num is the number at key, or the first item of the inner list at key (br,
// bl, mtp arrive as inner lists); ok is false when there is none.
func (r Report) Num(key string) (float64, bool) {
	v, ok := r.Values[key]
	if !ok {
		return 0, false
	}
	if v.Kind == KindList {
		if len(v.List) == 0 {
			return 0, false
		}
		v = v.List[0]
	}
	switch v.Kind {
	case KindInt:
		return float64(v.Int), true
	case KindDec:
		return v.Dec, true
	}
	return 0, false
}

// Int is Num as an integer (0 when absent).
func (r Report) Int(key string) int64 {
	n, _ := r.Num(key)
	return int64(n)
}

// Event is the e key: the event type.
func (r Report) Event() string { return r.Str("e") }

// State is the sta key: the player state.
func (r Report) State() string { return r.Str("sta") }

// TS is the ts key: the event's time, Unix ms.
func (r Report) TS() int64 { return r.Int("ts") }

// ParseReport parses one report (an RFC 8941 dictionary).
func ParseReport(line string) (Report, error) {
	p := &sfParser{s: strings.TrimLeft(line, " ")}
	r := Report{Line: line, Values: map[string]Value{}}
	if strings.TrimSpace(p.s) == "" {
		return r, fmt.Errorf("empty report")
	}
	for {
		key, err := p.key()
		if err != nil {
			return r, err
		}
		var v Value
		if p.peek() == '=' {
			p.i++
			if v, err = p.itemOrList(); err != nil {
				return r, fmt.Errorf("%s: %w", key, err)
			}
		} else {
			v = Value{Kind: KindBool, Bool: true}
			if v.Params, err = p.params(); err != nil {
				return r, fmt.Errorf("%s: %w", key, err)
			}
		}
		if _, dup := r.Values[key]; !dup {
			r.Keys = append(r.Keys, key)
		}
		r.Values[key] = v
		p.ows()
		if p.done() {
			return r, nil
		}
		if p.peek() != ',' {
			return r, fmt.Errorf("after %s: want ',' at %d, got %q", key, p.i, p.s[p.i:])
		}
		p.i++
		p.ows()
		if p.done() {
			return r, fmt.Errorf("trailing comma")
		}
	}
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }
func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}
func (p *sfParser) ows() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) key() (string, error) {
	start := p.i
	c := p.peek()
	if !(c >= 'a' && c <= 'z' || c == '*') {
		return "", fmt.Errorf("want a key at %d, got %q", p.i, p.s[p.i:])
	}
	for !p.done() {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) itemOrList() (Value, error) {
	if p.peek() != '(' {
		v, err := p.bare()
		if err != nil {
			return v, err
		}
		v.Params, err = p.params()
		return v, err
	}
	p.i++
	v := Value{Kind: KindList}
	for {
		for p.peek() == ' ' {
			p.i++
		}
		if p.peek() == ')' {
			p.i++
			var err error
			v.Params, err = p.params()
			return v, err
		}
		item, err := p.bare()
		if err != nil {
			return v, err
		}
		if item.Params, err = p.params(); err != nil {
			return v, err
		}
		v.List = append(v.List, item)
		if c := p.peek(); c != ' ' && c != ')' {
			return v, fmt.Errorf("inner list: want ' ' or ')' at %d", p.i)
		}
	}
}

func (p *sfParser) params() (map[string]Value, error) {
	var out map[string]Value
	for p.peek() == ';' {
		p.i++
		p.ows()
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		v := Value{Kind: KindBool, Bool: true}
		if p.peek() == '=' {
			p.i++
			if v, err = p.bare(); err != nil {
				return nil, err
			}
		}
		if out == nil {
			out = map[string]Value{}
		}
		out[k] = v
	}
	return out, nil
}

func (p *sfParser) bare() (Value, error) {
	c := p.peek()
	switch {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return p.str()
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return Value{}, fmt.Errorf("unterminated byte sequence")
		}
		b, err := base64.StdEncoding.DecodeString(p.s[p.i+1 : p.i+1+end])
		if err != nil {
			return Value{}, err
		}
		p.i += end + 2
		return Value{Kind: KindBytes, Str: string(b)}, nil
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := Value{Kind: KindBool, Bool: p.s[p.i+1] == '1'}
			p.i += 2
			return v, nil
		}
		return Value{}, fmt.Errorf("bad boolean at %d", p.i)
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		start := p.i
		for !p.done() && (isAlnum(p.s[p.i]) || strings.IndexByte(":/!#$%&'*+-.^_`|~", p.s[p.i]) >= 0) {
			p.i++
		}
		return Value{Kind: KindToken, Str: p.s[start:p.i]}, nil
	}
	return Value{}, fmt.Errorf("want an item at %d, got %q", p.i, p.s[p.i:])
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *sfParser) number() (Value, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	dot := -1
	for !p.done() {
		c := p.s[p.i]
		if c >= '0' && c <= '9' {
			p.i++
		} else if c == '.' && dot < 0 {
			dot = p.i
			p.i++
		} else {
			break
		}
	}
	lit := p.s[start:p.i]
	if dot < 0 {
		if len(strings.TrimPrefix(lit, "-")) > 15 {
			return Value{}, fmt.Errorf("integer %s has more than 15 digits", lit)
		}
		n, err := strconv.ParseInt(lit, 10, 64)
		return Value{Kind: KindInt, Int: n}, err
	}
	if frac := p.i - dot - 1; frac < 1 || frac > 3 || dot-start-strings.Count(lit[:1], "-") > 12 {
		return Value{}, fmt.Errorf("decimal %s out of RFC 8941 bounds", lit)
	}
	f, err := strconv.ParseFloat(lit, 64)
	return Value{Kind: KindDec, Dec: f}, err
}

func (p *sfParser) str() (Value, error) {
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.done() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return Value{}, fmt.Errorf("bad escape in string")
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return Value{Kind: KindString, Str: b.String()}, nil
		case c < 0x20 || c > 0x7e:
			return Value{}, fmt.Errorf("non-ASCII or control character in string")
		default:
			b.WriteByte(c)
		}
	}
	return Value{}, fmt.Errorf("unterminated string")
}
