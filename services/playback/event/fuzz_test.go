package event_test

import (
	"encoding/json"
	"testing"

	"playpulse.dev/services/playback/event"
)

// FuzzDecode checks that the decoder never panics, that anything it accepts
// re-encodes to something it decodes to the same event, and that
// encoding/json agrees on every field it accepted. The corpus under
// testdata/fuzz is kept in the repository (make fuzz refreshes it).
func FuzzDecode(f *testing.F) {
	for _, e := range samples() {
		f.Add(e.AppendJSON(nil))
	}
	f.Add([]byte(good))
	f.Add([]byte(`{"v":1,"event_type":"\ud83d\ude00"}`))
	f.Add([]byte(`{"x":[{"y":"\u00e9\\"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e event.Event
		if err := event.Decode(b, &e); err != nil {
			if event.ReasonOf(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		var again event.Event
		out := e.AppendJSON(nil)
		if err := event.Decode(out, &again); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
		// ts is re-encoded with millisecond precision.
		e.TS = event.Millis(e.TS)
		if again != e {
			t.Fatalf("round trip differs:\n%+v\n%+v", e, again)
		}
		var std struct {
			EventID   string  `json:"event_id"`
			SessionID string  `json:"session_id"`
			UserID    string  `json:"user_id"`
			MovieID   string  `json:"movie_id"`
			Device    string  `json:"device"`
			Seq       uint64  `json:"seq"`
			Position  float64 `json:"position_seconds"`
		}
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatalf("we accept what encoding/json rejects: %q: %v", b, err)
		}
		if std.EventID != e.EventID || std.SessionID != e.SessionID || std.UserID != e.UserID ||
			std.MovieID != e.MovieID || std.Device != e.Device || std.Seq != e.Seq || std.Position != e.Position {
			t.Fatalf("encoding/json reads %+v, we read %+v", std, e)
		}
	})
}
