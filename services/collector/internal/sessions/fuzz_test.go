package sessions

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/collector/internal/mapping"
	"playpulse.dev/services/playback/event"
)

// FuzzParseMap feeds arbitrary bodies through the parser and the mapping:
// a line either is refused with a reason, or parses to a report whose
// canonical line parses back to it; and whatever reports arrive, in any
// order, every event emitted is legal for its session and valid on the
// wire (checkLegal). `make fuzz` runs it; the corpus starts with the
// recorded sessions and is kept in testdata/fuzz.
func FuzzParseMap(f *testing.F) {
	files, _ := filepath.Glob("testdata/recorded/*.cmcd")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 1500 { // small seeds keep minimization short
			b = b[:1500]
		}
		f.Add(b)
	}
	f.Add([]byte("v=2,sid=\"a\",sn=0,ts=1,e=ps,sta=f\nv=2,sid=\"a\",sn=1,ts=2,e=e,ec=(\"x\")\n"))
	opts := cmcd.Options{UserIDKey: "com.example-uid"}
	f.Fuzz(func(t *testing.T, body []byte) {
		tb := New(Options{MaxSessions: 8, MaxPending: 4})
		var evs []event.Event
		received := int64(1_000_000)
		for _, line := range bytes.Split(body, []byte{'\n'}) {
			r, err := cmcd.Parse(line, opts)
			if err != nil {
				if cmcd.ReasonOf(err) == "other" {
					t.Fatalf("error without a reason: %v", err)
				}
				continue
			}
			back, err := cmcd.Parse(r.AppendLine(nil, opts.UserIDKey), opts)
			if err != nil || !reflect.DeepEqual(back, r) {
				t.Fatalf("canonical line of %q: %+v, %v", line, back, err)
			}
			received += int64(len(line)) * 37 // time moves, by an arbitrary amount
			evs = tb.Add(mapping.Input{Report: r, Ctx: mapping.Context{Stream: "s", Device: "tv"}}, received, evs)
		}
		evs = tb.Tick(received+3_600_000, evs)
		checkLegal(t, evs)
		if tb.Live() != 0 {
			t.Fatalf("%d sessions live an hour after the last report", tb.Live())
		}
	})
}
