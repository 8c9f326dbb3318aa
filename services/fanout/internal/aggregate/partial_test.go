package aggregate

import (
	"bytes"
	"testing"
)

func samplePartial() *partial {
	p := &partial{topic: "playback-events", part: 3, sec: 1_790_000_000, latest: true, lastTS: 1_790_000_000_999, tracked: 12, evicted: 1,
		titles: []titleCount{{"m1", 4}, {"m2", 1}}}
	b := counts{sec: p.sec, attempts: 3, plays: 2, ccvDelta: -1, playMS: 12_000, bitrateMS: 12_000 * 3000}
	b.byType[1] = 7
	b.rungMS[2] = 12_000
	b.startup[histIndex(850)] = 2
	p.scopes = []partialScope{
		{kind: scopeOverall, lastTS: p.lastTS, b: b, ccv: 5},
		{kind: scopeStream, name: "alpha", lastTS: p.lastTS, b: b, ccv: 5, by: make([]sourceCount, len(sourceNames))},
		{kind: scopeDim + dimCountry, name: "NL", b: b, ccv: 2},
	}
	return p
}

// A partial decodes to what was encoded.
func TestPartialRoundTrip(t *testing.T) {
	p := samplePartial()
	v := p.encode(nil)
	q, err := decodePartial(PartialKey(p.topic, p.part, p.sec), v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q.encode(nil), v) || q.topic != p.topic || q.part != p.part || q.sec != p.sec || q.scopes[2].b != p.scopes[2].b {
		t.Fatalf("decoded %+v, encoded %+v", q, p)
	}
}

// Bad keys and values are errors with a reason, never a panic.
func TestApplyPartialRejects(t *testing.T) {
	good := samplePartial().encode(nil)
	for _, c := range []struct {
		key, value []byte
		reason     string
	}{
		{[]byte("no-slashes"), good, "key"},
		{[]byte("t/-1/5"), good, "key"},
		{[]byte("t/1/5"), nil, "truncated"},
		{[]byte("t/1/5"), []byte{9, 0}, "version"},
		{[]byte("t/1/5"), good[:len(good)-1], "truncated"},
		{[]byte("t/1/5"), append(bytes.Clone(good), 0), "trailing"},
	} {
		a := NewMerged(Options{})
		err := a.ApplyPartial(c.key, c.value)
		if err == nil || ReasonOf(err) != c.reason {
			t.Errorf("%q/%x: %v (reason %s), want reason %s", c.key, c.value, err, ReasonOf(err), c.reason)
		}
	}
}

// Whatever the bytes, decoding neither panics nor allocates beyond the
// limits, and what decodes encodes to a value that decodes to the same.
func FuzzDecodePartial(f *testing.F) {
	p := samplePartial()
	f.Add([]byte("t/1/5"), p.encode(nil))
	p.latest = false
	f.Add([]byte("t/0/7"), p.encode(nil))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		q, err := decodePartial(key, value)
		if err != nil {
			return
		}
		v := q.encode(nil)
		q2, err := decodePartial(key, v)
		if err != nil || !bytes.Equal(q2.encode(nil), v) {
			t.Fatalf("re-encoded value %x does not decode the same: %v", v, err)
		}
		a := NewMerged(Options{})
		_ = a.ApplyPartial(key, value)
		a.Snapshot(a.opts.Now(), false)
	})
}
