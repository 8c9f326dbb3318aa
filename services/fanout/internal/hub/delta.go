package hub

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
)

// Deltas: most of a periodic snapshot is the same as in the one before
// (the figures of a window that moved by a quarter of a second, series
// that moved by at most one second), so a client that has the previous
// one gets only what changed. The patch is computed once per snapshot for
// every client, on the decoded JSON, so it follows whatever the snapshot
// holds. docs/protocol.md ("Delta") states the rule a client applies:
//
//   - an object is patched key by key: a key absent from the patch keeps
//     its value;
//   - a number, string or boolean replaces the value;
//   - [] deletes the key;
//   - [v] replaces the value with v (null, an object or an array);
//   - [k, m, [v…]] turns an array a into a[k:k+m] followed by v…: the
//     series move by dropping their oldest seconds and appending new ones.
//
// A patch never adds a key: an object that gains one is replaced whole,
// so its keys keep the order of the complete snapshot.

// decode parses a snapshot for diffing; numbers keep their text, so two
// values are equal exactly when their encodings are.
func decode(raw []byte) (any, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil, false
	}
	return v, true
}

// diff returns the patch from a to b, and false when they are equal.
func diff(a, b any) (any, bool) {
	switch bv := b.(type) {
	case map[string]any:
		av, ok := a.(map[string]any)
		if !ok {
			return replace(b), true
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				return replace(b), true // a new key: replaced, see above
			}
		}
		p := map[string]any{}
		for k, old := range av {
			nv, ok := bv[k]
			if !ok {
				p[k] = []any{}
				continue
			}
			if d, changed := diff(old, nv); changed {
				p[k] = d
			}
		}
		return p, len(p) > 0
	case []any:
		av, ok := a.([]any)
		if !ok {
			return replace(b), true
		}
		return diffArray(av, bv)
	}
	if reflect.DeepEqual(a, b) {
		return nil, false
	}
	return replace(b), true
}

// replace is the patch that sets v, whatever was there.
func replace(v any) any {
	switch v.(type) {
	case nil, map[string]any, []any:
		return []any{v}
	}
	return v
}

// diffArray keeps the longest run of a that b starts with (the series'
// seconds still in the window) and appends the rest of b.
func diffArray(a, b []any) (any, bool) {
	bestK, bestM := 0, 0
	for k := range a {
		m := 0
		for m < len(b) && k+m < len(a) && reflect.DeepEqual(a[k+m], b[m]) {
			m++
		}
		if m > bestM {
			bestK, bestM = k, m
		}
	}
	if bestK == 0 && bestM == len(a) && len(a) == len(b) {
		return nil, false
	}
	if bestM == 0 {
		return []any{b}, true
	}
	rest := b[bestM:]
	if rest == nil {
		rest = []any{}
	}
	return []any{bestK, bestM, rest}, true
}

// deltaMessage encodes the delta from the snapshot of version base to the
// next one, or returns nil when there is no change but "time".
func deltaMessage(base uint64, old, cur any) []byte {
	p, changed := diff(old, cur)
	if !changed {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil // decoded JSON encodes again: cannot happen
	}
	out := make([]byte, 0, len(b)+64)
	out = append(out, `{"type":"delta","base":`...)
	out = strconv.AppendUint(out, base, 10)
	out = append(out, `,"version":`...)
	out = strconv.AppendUint(out, base+1, 10)
	out = append(out, `,"patch":`...)
	out = append(out, b...)
	return append(out, '}')
}

// withVersion puts "version" first in a complete periodic snapshot sent on
// the WebSocket, so that a client knows which delta applies to it.
func withVersion(raw []byte, v uint64) []byte {
	if len(raw) < 2 || raw[0] != '{' {
		return raw
	}
	out := make([]byte, 0, len(raw)+32)
	out = append(out, `{"version":`...)
	out = strconv.AppendUint(out, v, 10)
	if raw[1] != '}' {
		out = append(out, ',')
	}
	return append(out, raw[1:]...)
}
