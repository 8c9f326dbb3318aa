package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/event/eventtest"
)

var ts = time.Date(2026, 11, 24, 21, 0, 1, 234_000_000, time.UTC)

// sample returns one valid event of each type.
func samples() []event.Event {
	base := event.Event{
		V: 1, EventID: "s1-2", SessionID: "s1", Seq: 2, Stream: "default",
		UserID: "user_42", MovieID: "movie_7", Position: 12.5, Bitrate: 3000,
		Device: "tv", TS: ts, Network: "wifi", Country: "DE", CDN: "cdn-a", Source: event.SourceCMCD,
	}
	var out []event.Event
	for _, t := range event.Types() {
		e := base
		e.Type = t
		switch t {
		case event.Play:
			e.FirstFrame, e.StartupMS = true, 1480
		case event.BufferEnd:
			e.StallMS = 2100
		case event.BitrateChange:
			e.PrevBitrate = 4300
		case event.Seek:
			e.From = 3.25
		case event.Error:
			e.ErrorCode, e.Fatal = "MEDIA_ERR_DECODE", true
		case event.Stop:
			e.StopReason = event.StopQuit
		}
		out = append(out, e)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, e := range samples() {
		t.Run(e.Type.String(), func(t *testing.T) {
			b := e.AppendJSON(nil)
			var got event.Event
			if err := event.Decode(b, &got); err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if got != e {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
			}
			// encoding/json must read our bytes the same way.
			var generic map[string]any
			if err := json.Unmarshal(b, &generic); err != nil {
				t.Fatalf("encoding/json rejects our output %s: %v", b, err)
			}
			if generic["event_type"] != e.Type.String() || generic["ts"] != "2026-11-24T21:00:01.234Z" {
				t.Fatalf("unexpected generic view %v", generic)
			}
		})
	}
}

func TestResumePlayHasNoStartup(t *testing.T) {
	e := samples()[0]
	e.FirstFrame = false
	b := e.AppendJSON(nil)
	if bytes.Contains(b, []byte("startup_ms")) {
		t.Fatalf("resume play carries startup_ms: %s", b)
	}
	var got event.Event
	if err := event.Decode(b, &got); err != nil || got.FirstFrame {
		t.Fatalf("Decode = %+v, %v", got, err)
	}
}

func TestSchemaAcceptsEncoderOutput(t *testing.T) {
	sch := eventtest.Schema(t)
	for _, e := range samples() {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.AppendJSON(nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s: schema rejects encoder output: %v", e.Type, err)
		}
	}
}

// TestSchemaMatchesGoContract keeps the schema file and the decoder's
// required-field lists in step: dropping any required field must make both
// reject the event.
func TestSchemaMatchesGoContract(t *testing.T) {
	sch := eventtest.Schema(t)
	for _, e := range samples() {
		full := map[string]any{}
		if err := json.Unmarshal(e.AppendJSON(nil), &full); err != nil {
			t.Fatal(err)
		}
		for _, f := range event.RequiredFields(e.Type) {
			m := maps(full)
			delete(m, f)
			b, _ := json.Marshal(m)
			var got event.Event
			if err := event.Decode(b, &got); !errors.Is(err, event.ErrMissingField) {
				t.Errorf("%s without %s: Decode err = %v, want ErrMissingField", e.Type, f, err)
			}
			if err := sch.Validate(m); err == nil {
				t.Errorf("%s without %s: schema accepts it", e.Type, f)
			}
		}
	}
	// The enum in the schema lists exactly the Go types.
	var doc struct {
		Properties map[string]struct {
			Enum []string `json:"enum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(event.Schema, &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ty := range event.Types() {
		names = append(names, ty.String())
	}
	if !slices.Equal(doc.Properties["event_type"].Enum, names) {
		t.Errorf("schema enum %v, Go types %v", doc.Properties["event_type"].Enum, names)
	}
	if !slices.Equal(doc.Properties["stop_reason"].Enum, event.StopReasons) {
		t.Errorf("schema stop reasons %v, Go %v", doc.Properties["stop_reason"].Enum, event.StopReasons)
	}
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

const good = `{"v":1,"event_id":"e","session_id":"s","seq":1,"stream":"x","user_id":"u","movie_id":"m","event_type":"pause","position_seconds":1,"bitrate_kbps":0,"device":"tv","ts":"2026-11-24T21:00:01.234Z"}`

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   error
		reason string
		field  string
	}{
		{"not json", `hello`, event.ErrSyntax, "not_json", ""},
		{"array", `[1,2]`, event.ErrSyntax, "not_json", ""},
		{"truncated", good[:40], event.ErrSyntax, "not_json", ""},
		{"trailing", good + `x`, event.ErrSyntax, "not_json", ""},
		{"empty object", `{}`, event.ErrMissingField, "missing_field", "v"},
		{"missing ts", strings.Replace(good, `,"ts":"2026-11-24T21:00:01.234Z"`, ``, 1), event.ErrMissingField, "missing_field", "ts"},
		{"stop without reason", strings.Replace(good, `"pause"`, `"stop"`, 1), event.ErrMissingField, "missing_field", "stop_reason"},
		{"seq as string", strings.Replace(good, `"seq":1`, `"seq":"1"`, 1), event.ErrWrongType, "wrong_type", "seq"},
		{"position as string", strings.Replace(good, `"position_seconds":1`, `"position_seconds":"1"`, 1), event.ErrWrongType, "wrong_type", "position_seconds"},
		{"bitrate float", strings.Replace(good, `"bitrate_kbps":0`, `"bitrate_kbps":1.5`, 1), event.ErrWrongType, "wrong_type", "bitrate_kbps"},
		{"user null", strings.Replace(good, `"user_id":"u"`, `"user_id":null`, 1), event.ErrWrongType, "wrong_type", "user_id"},
		{"device object", strings.Replace(good, `"device":"tv"`, `"device":{"a":[1]}`, 1), event.ErrWrongType, "wrong_type", "device"},
		{"unknown type", strings.Replace(good, `"pause"`, `"rewind"`, 1), event.ErrUnknownType, "unknown_type", "event_type"},
		{"type wrong type", strings.Replace(good, `"pause"`, `3`, 1), event.ErrWrongType, "wrong_type", "event_type"},
		{"version 2", strings.Replace(good, `"v":1`, `"v":2`, 1), event.ErrUnsupportedVersion, "unsupported_version", "v"},
		{"bad ts", strings.Replace(good, `2026-11-24T21:00:01.234Z`, `yesterday`, 1), event.ErrInvalidValue, "invalid_value", "ts"},
		{"negative position", strings.Replace(good, `"position_seconds":1`, `"position_seconds":-1`, 1), event.ErrInvalidValue, "invalid_value", "position_seconds"},
		{"seq zero", strings.Replace(good, `"seq":1`, `"seq":0`, 1), event.ErrInvalidValue, "invalid_value", "seq"},
		{"empty session", strings.Replace(good, `"session_id":"s"`, `"session_id":""`, 1), event.ErrInvalidValue, "invalid_value", "session_id"},
		{"unknown source", strings.Replace(good, `"device":"tv"`, `"device":"tv","source":"browser"`, 1), event.ErrInvalidValue, "invalid_value", "source"},
		{"source as number", strings.Replace(good, `"device":"tv"`, `"device":"tv","source":1`, 1), event.ErrWrongType, "wrong_type", "source"},
		{"huge seq", strings.Replace(good, `"seq":1`, `"seq":99999999999999999999`, 1), event.ErrInvalidValue, "invalid_value", "seq"},
		{"too large", `{"pad":"` + strings.Repeat("x", event.MaxRecordBytes) + `"}`, event.ErrTooLarge, "too_large", ""},
		{"deep nesting", `{"x":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`, event.ErrSyntax, "not_json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e event.Event
			err := event.Decode([]byte(tt.in), &e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got := event.ReasonOf(err); got != tt.reason {
				t.Errorf("ReasonOf = %q, want %q", got, tt.reason)
			}
			var de *event.DecodeError
			if errors.As(err, &de) && de.Field != tt.field {
				t.Errorf("Field = %q, want %q", de.Field, tt.field)
			}
		})
	}
}

func TestDecodeAcceptsLiberalInput(t *testing.T) {
	in := " \n" + strings.Replace(good, `"device":"tv"`, `"device":"t\u0076","extra":{"nested":[true,null,-1.5e3]}`, 1) + "\t"
	var e event.Event
	if err := event.Decode([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if e.Device != "tv" || e.Type != event.Pause {
		t.Fatalf("got %+v", e)
	}
}

func TestStringEscaping(t *testing.T) {
	hostile := "<img src=x onerror=alert(1)>\"\\\n\x01\u2028é\xff"
	e := samples()[1]
	e.MovieID = hostile
	b := e.AppendJSON(nil)
	var got event.Event
	if err := event.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(hostile, "\xff", "\ufffd", 1)
	if got.MovieID != want {
		t.Fatalf("MovieID = %q, want %q", got.MovieID, want)
	}
	var viaStd struct {
		MovieID string `json:"movie_id"`
	}
	if err := json.Unmarshal(b, &viaStd); err != nil || viaStd.MovieID != want {
		t.Fatalf("encoding/json reads %q, %v", viaStd.MovieID, err)
	}
}

func TestAppendJSONDoesNotAllocate(t *testing.T) {
	e := samples()[2]
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }); n != 0 {
		t.Fatalf("AppendJSON allocates %v times", n)
	}
}
