package cmcd

import (
	"math"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// parseReference is Parse on github.com/dunglas/httpsfv, the maintained
// RFC 8941 parser the collector first used: the differential fuzz test
// holds the two to the same verdicts and values.
func parseReference(line []byte, opts Options) (Report, error) {
	r := Report{SN: -1, TS: -1, BR: -1, MSD: -1, BSD: -1, PT: -1}
	maxLine := opts.MaxLine
	if maxLine <= 0 {
		maxLine = 4096
	}
	if len(line) > maxLine {
		return r, fail(ReasonLineTooLong, "", strconv.Itoa(len(line))+" bytes")
	}
	for _, c := range line {
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return r, fail(ReasonControl, "", "byte 0x"+strconv.FormatUint(uint64(c), 16))
		}
	}
	d, err := httpsfv.UnmarshalDictionary([]string{string(line)})
	if err != nil || d == nil || len(d.Names()) == 0 {
		detail := "empty"
		if err != nil {
			detail = err.Error()
		}
		return r, fail(ReasonNotCMCD, "", detail)
	}
	if len(d.Names()) > MaxKeys {
		return r, fail(ReasonTooManyKeys, "", strconv.Itoa(len(d.Names()))+" keys")
	}
	version := int64(-1)
	for _, k := range d.Names() {
		m, _ := d.Get(k)
		var err error
		switch k {
		case "v":
			version, err = refInteger(m, k, 0, math.MaxInt32)
			if err == nil && version != 2 {
				return r, fail(ReasonVersion, k, "v="+strconv.FormatInt(version, 10)+", only CMCD v2 event reports are accepted")
			}
		case "sid":
			r.SID, err = refStr(m, k, MaxSID, false)
		case "sn":
			r.SN, err = refInteger(m, k, 0, MaxSN)
		case "ts":
			r.TS, err = refInteger(m, k, 1, MaxTS)
		case "e":
			r.Event, err = refToken(m, k, 8)
		case "sta":
			var s string
			if s, err = refToken(m, k, 1); err == nil {
				if len(s) != 1 || !strings.Contains(validStates, s) {
					return r, fail(ReasonInvalid, k, "unknown player state "+strconv.Quote(s))
				}
				r.State = s[0]
			}
		case "cid":
			r.CID, err = refStr(m, k, MaxCID, false)
		case "br":
			r.BR, err = refNumber(m, k, 0, MaxBitrate)
		case "msd":
			r.MSD, err = refInteger(m, k, 0, MaxDurationMS)
		case "bsd":
			r.BSD, err = refNumber(m, k, 0, MaxDurationMS)
		case "pt":
			r.PT, err = refNumber(m, k, 0, MaxTS)
		case "ec":
			r.EC, err = refStrList(m, k)
		case "cdn":
			r.CDN, err = refStr(m, k, MaxCustom, false)
		default:
			if opts.UserIDKey != "" && k == opts.UserIDKey {
				r.UserID, err = refStr(m, k, MaxCustom, true)
			}
		}
		if err != nil {
			return r, err
		}
	}
	return r, complete(r, version)
}

func refItem(m httpsfv.Member, key string) (any, error) {
	it, ok := m.(httpsfv.Item)
	if !ok {
		return nil, fail(ReasonWrongType, key, "an inner list where an item is expected")
	}
	return it.Value, nil
}

func refStr(m httpsfv.Member, key string, maxLen int, tokenOK bool) (string, error) {
	v, err := refItem(m, key)
	if err != nil {
		return "", err
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case httpsfv.Token:
		if !tokenOK {
			return "", fail(ReasonWrongType, key, "a token where a string is expected")
		}
		s = string(x)
	default:
		return "", fail(ReasonWrongType, key, "want a string")
	}
	if s == "" {
		return "", fail(ReasonInvalid, key, "empty")
	}
	if len(s) > maxLen {
		return "", fail(ReasonValueTooLong, key, strconv.Itoa(len(s))+" characters, at most "+strconv.Itoa(maxLen))
	}
	return s, safe(s, key)
}

func refToken(m httpsfv.Member, key string, maxLen int) (string, error) {
	v, err := refItem(m, key)
	if err != nil {
		return "", err
	}
	t, ok := v.(httpsfv.Token)
	if !ok {
		return "", fail(ReasonWrongType, key, "want a token")
	}
	if len(t) > maxLen {
		return "", fail(ReasonValueTooLong, key, strconv.Itoa(len(t))+" characters, at most "+strconv.Itoa(maxLen))
	}
	return string(t), nil
}

func refInteger(m httpsfv.Member, key string, lo, hi int64) (int64, error) {
	v, err := refItem(m, key)
	if err != nil {
		return 0, err
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fail(ReasonWrongType, key, "want an integer")
	}
	if n < lo || n > hi {
		return 0, fail(ReasonInvalid, key, strconv.FormatInt(n, 10)+" out of range")
	}
	return n, nil
}

// number takes an integer or decimal (rounded), or the first item of an
// inner list of them: players send br, bl and mtp as inner lists, one item
// per object type.
func refNumber(m httpsfv.Member, key string, lo, hi int64) (int64, error) {
	var v any
	switch x := m.(type) {
	case httpsfv.InnerList:
		if len(x.Items) == 0 {
			return 0, fail(ReasonInvalid, key, "empty inner list")
		}
		if len(x.Items) > MaxErrorCodes {
			return 0, fail(ReasonValueTooLong, key, strconv.Itoa(len(x.Items))+" items")
		}
		v = x.Items[0].Value
	case httpsfv.Item:
		v = x.Value
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case float64:
		n = int64(math.Round(x))
	default:
		return 0, fail(ReasonWrongType, key, "want a number")
	}
	if n < lo || n > hi {
		return 0, fail(ReasonInvalid, key, strconv.FormatInt(n, 10)+" out of range")
	}
	return n, nil
}

// strList takes ec: an inner list of strings (or one string).
func refStrList(m httpsfv.Member, key string) ([]string, error) {
	var items []httpsfv.Item
	switch x := m.(type) {
	case httpsfv.InnerList:
		items = x.Items
	case httpsfv.Item:
		items = []httpsfv.Item{x}
	}
	if len(items) > MaxErrorCodes {
		return nil, fail(ReasonValueTooLong, key, strconv.Itoa(len(items))+" error codes, at most "+strconv.Itoa(MaxErrorCodes))
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.Value.(string)
		if !ok {
			if t, isTok := it.Value.(httpsfv.Token); isTok {
				s = string(t)
			} else {
				return nil, fail(ReasonWrongType, key, "want strings")
			}
		}
		if s == "" {
			continue
		}
		if len(s) > MaxCustom {
			return nil, fail(ReasonValueTooLong, key, strconv.Itoa(len(s))+" characters, at most "+strconv.Itoa(MaxCustom))
		}
		if err := safe(s, key); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
