package hub

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// apply is the rule of docs/protocol.md ("Delta"), written from the doc as
// the page's applyPatch (ui/src/store.js) is: it returns the patched value
// and changes nothing it was given.
func apply(v, p any) any {
	switch pv := p.(type) {
	case map[string]any:
		old, _ := v.(map[string]any)
		out := make(map[string]any, len(old))
		for k, x := range old {
			out[k] = x
		}
		for k, x := range pv {
			if op, ok := x.([]any); ok && len(op) == 0 {
				delete(out, k)
				continue
			}
			out[k] = apply(old[k], x)
		}
		return out
	case []any:
		switch len(pv) {
		case 1:
			return pv[0]
		case 3:
			a := v.([]any)
			k, m := num(pv[0]), num(pv[1])
			return append(append([]any{}, a[k:k+m]...), pv[2].([]any)...)
		}
		panic("bad patch operation")
	}
	return p
}

// num reads k or m, decoded with UseNumber or not.
func num(v any) int {
	if f, ok := v.(float64); ok {
		return int(f)
	}
	n, err := v.(json.Number).Int64()
	if err != nil {
		panic(err)
	}
	return int(n)
}

func mustDecode(t *testing.T, s string) any {
	t.Helper()
	v, ok := decode([]byte(s))
	if !ok {
		t.Fatalf("not JSON: %s", s)
	}
	return v
}

// patchOf returns the decoded patch of a delta message between two
// snapshots, nil when none.
func patchOf(t *testing.T, old, cur any) any {
	t.Helper()
	d := deltaMessage(7, old, cur)
	if d == nil {
		return nil
	}
	m := mustDecode(t, string(d)).(map[string]any)
	if m["type"] != "delta" || m["base"] != json.Number("7") || m["version"] != json.Number("8") {
		t.Fatalf("delta message %s", d)
	}
	return m["patch"]
}

func TestDeltaRule(t *testing.T) {
	tests := []struct {
		name, old, cur, patch string // patch "": no delta
	}{
		{"same", `{"a":1,"b":[1,2]}`, `{"a":1,"b":[1,2]}`, ``},
		{"number", `{"a":1,"b":2}`, `{"a":1,"b":3}`, `{"b":3}`},
		{"nested", `{"o":{"x":"s","y":true}}`, `{"o":{"x":"t","y":true}}`, `{"o":{"x":"t"}}`},
		{"to null", `{"a":1}`, `{"a":null}`, `{"a":[null]}`},
		{"from null", `{"a":null}`, `{"a":1.5}`, `{"a":1.5}`},
		{"removed key", `{"m":{"x":1,"y":2}}`, `{"m":{"x":1}}`, `{"m":{"y":[]}}`},
		{"new key replaces the object", `{"m":{"x":1}}`, `{"m":{"x":1,"y":2}}`, `{"m":[{"x":1,"y":2}]}`},
		{"series moved", `{"s":[1,2,3,4]}`, `{"s":[3,4,5,6]}`, `{"s":[2,2,[5,6]]}`},
		{"last second changed", `{"s":[1,2,3,4]}`, `{"s":[1,2,3,9]}`, `{"s":[0,3,[9]]}`},
		{"shorter", `{"s":[1,2,3,4]}`, `{"s":[2,3]}`, `{"s":[1,2,[]]}`},
		{"nothing kept", `{"s":[1,2]}`, `{"s":[3,4]}`, `{"s":[[3,4]]}`},
		{"array of objects", `{"t":[{"m":"a"},{"m":"b"}]}`, `{"t":[{"m":"b"}]}`, `{"t":[1,1,[]]}`},
		{"string to object", `{"s":"overall"}`, `{"s":{"a":[1]}}`, `{"s":[{"a":[1]}]}`},
		{"object to string", `{"s":{"a":[1]}}`, `{"s":"overall"}`, `{"s":"overall"}`},
		{"a key named like an operation", `{"m":{"[]":1}}`, `{"m":{"[]":2}}`, `{"m":{"[]":2}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, cur := mustDecode(t, tt.old), mustDecode(t, tt.cur)
			p := patchOf(t, old, cur)
			if tt.patch == "" {
				if p != nil {
					t.Fatalf("patch %v, want none", p)
				}
				return
			}
			if want := mustDecode(t, tt.patch); !reflect.DeepEqual(p, want) {
				got, _ := json.Marshal(p)
				t.Fatalf("patch %s, want %s", got, tt.patch)
			}
			oldCopy := mustDecode(t, tt.old)
			if got := apply(old, p); !reflect.DeepEqual(got, cur) {
				t.Errorf("applied: %v, want %v", got, cur)
			}
			if !reflect.DeepEqual(old, oldCopy) {
				t.Errorf("apply changed the old value")
			}
		})
	}
}

// Every delta of a simulated minute and a half, applied to the snapshot
// before it, gives the next complete snapshot exactly; the deltas are
// much smaller.
func TestDeltasRebuildSnapshots(t *testing.T) {
	const rate = 400 // events/s per stream
	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	clock := t0
	a := aggregate.New(aggregate.Options{Now: func() time.Time { return clock }})
	var sims []*sim.Sim
	for i, name := range []string{"alpha", "beta", "gamma"} {
		k := sim.DefaultConfig()
		k.Seed = uint64(i + 1)
		s, err := sim.New(k, name, name)
		if err != nil {
			t.Fatal(err)
		}
		s.SetRate(rate)
		sims = append(sims, s)
	}
	var e event.Event
	rec := &consume.Record{Topic: "t"}
	step := time.Second / (rate * time.Duration(len(sims)))
	var prev any
	var completeBytes, deltaBytes, n int
	nextSnap := t0.Add(250 * time.Millisecond)
	for now := t0; now.Before(t0.Add(90 * time.Second)); now = now.Add(step) {
		sims[rec.Offset%int64(len(sims))].Next(now, &e)
		rec.Offset++
		// Late records: one in ten is stamped up to 1.5 s back, as
		// producers' batches arrive, so that past seconds change too.
		ts := e.TS.Truncate(time.Millisecond)
		if rec.Offset%10 == 0 {
			ts = ts.Add(-time.Duration(rec.Offset%1500) * time.Millisecond)
		}
		rec.Timestamp, rec.Event = ts, e
		clock = now
		a.Add(rec)
		if now.Before(nextSnap) {
			continue
		}
		nextSnap = nextSnap.Add(250 * time.Millisecond)
		raw := a.Snapshot(now, false).JSON()
		cur := mustDecode(t, string(raw))
		if prev != nil {
			d := deltaMessage(uint64(n), prev, cur)
			m := mustDecode(t, string(d)).(map[string]any)
			if got := apply(prev, m["patch"]); !reflect.DeepEqual(got, cur) {
				gb, _ := json.Marshal(got)
				t.Fatalf("snapshot %d: delta %s applied gives\n%s\nwant\n%s", n, d, gb, raw)
			}
			completeBytes += len(raw)
			deltaBytes += len(d)
		}
		prev = cur
		n++
	}
	t.Logf("%d snapshots: complete %d bytes on average, delta %d (%.2f×)", n, completeBytes/(n-1), deltaBytes/(n-1), float64(deltaBytes)/float64(completeBytes))
	if deltaBytes*2 > completeBytes {
		t.Errorf("deltas are %.2f× the complete snapshots, want ≤ 0.5×", float64(deltaBytes)/float64(completeBytes))
	}
}
