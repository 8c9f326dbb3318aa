package event_test

import (
	"testing"

	"playpulse.dev/services/playback/event"
)

func BenchmarkAppendJSON(b *testing.B) {
	evs := samples()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := &evs[i%len(evs)]
		buf = e.AppendJSON(buf[:0])
	}
}

func BenchmarkDecode(b *testing.B) {
	evs := samples()
	raw := make([][]byte, len(evs))
	for i := range evs {
		raw[i] = evs[i].AppendJSON(nil)
	}
	var e event.Event
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := event.Decode(raw[i%len(raw)], &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoder(b *testing.B) {
	evs := samples()
	raw := make([][]byte, len(evs))
	for i := range evs {
		raw[i] = evs[i].AppendJSON(nil)
	}
	var d event.Decoder
	var e event.Event
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := d.Decode(raw[i%len(raw)], &e); err != nil {
			b.Fatal(err)
		}
	}
}
