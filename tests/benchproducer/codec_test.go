package benchproducer

import (
	"bytes"
	"runtime"
	"time"

	snappy "github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// codecResult is one codec on batches of simulated events, in process:
// what it costs the producer per event and how much it saves, apart from
// everything else a Kafka round trip involves.
type codecResult struct {
	codec                string
	ratio                float64 // uncompressed / compressed bytes
	compressNs, decompNs float64 // per event, one core
}

// benchCodecs compresses 256 KiB batches of simulated events (key, value
// and header bytes, as in a record batch) the way sarama does: lz4 frames
// of 64 KiB blocks, zstd at its default speed, xerial-framed snappy.
func benchCodecs() []codecResult {
	cfg := sim.DefaultConfig()
	cfg.Seed = 7
	s, err := sim.New(cfg, "bench", "bench-pod-x7k2")
	if err != nil {
		panic(err)
	}
	s.SetRate(10000)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var e event.Event
	for range 60 * 10000 { // one simulated minute: a realistic mix
		now = now.Add(100 * time.Microsecond)
		s.Next(now, &e)
	}
	var batches [][]byte
	events := 0
	for len(batches) < 32 {
		var b []byte
		for len(b) < 256<<10 {
			now = now.Add(100 * time.Microsecond)
			s.Next(now, &e)
			b = append(b, e.SessionID...)
			b = e.AppendJSON(b)
			b = append(b, event.HeaderSchema+"1"...)
			events++
		}
		batches = append(batches, b)
	}
	zenc, _ := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zdec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	lzw := lz4.NewWriter(nil)
	if err := lzw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
		panic(err)
	}
	type codec struct {
		name string
		comp func([]byte) []byte
		dec  func([]byte) []byte
	}
	codecs := []codec{
		{"snappy", func(b []byte) []byte { return snappy.Encode(nil, b) }, func(b []byte) []byte { d, _ := snappy.Decode(b); return d }},
		{"lz4", func(b []byte) []byte {
			var out bytes.Buffer
			lzw.Reset(&out)
			_, _ = lzw.Write(b)
			_ = lzw.Close()
			return out.Bytes()
		}, func(b []byte) []byte {
			var out bytes.Buffer
			_, _ = out.ReadFrom(lz4.NewReader(bytes.NewReader(b)))
			return out.Bytes()
		}},
		{"zstd", func(b []byte) []byte { return zenc.EncodeAll(b, nil) }, func(b []byte) []byte { d, _ := zdec.DecodeAll(b, nil); return d }},
	}
	var out []codecResult
	for _, c := range codecs {
		const rounds = 5
		var in, comp int
		runtime.GC()
		start := time.Now()
		var compressed [][]byte
		for r := range rounds {
			for _, b := range batches {
				z := c.comp(b)
				if r == 0 {
					in += len(b)
					comp += len(z)
					compressed = append(compressed, z)
				}
			}
		}
		ct := time.Since(start)
		start = time.Now()
		for range rounds {
			for _, z := range compressed {
				c.dec(z)
			}
		}
		dt := time.Since(start)
		n := float64(events * rounds)
		out = append(out, codecResult{codec: c.name, ratio: float64(in) / float64(comp),
			compressNs: float64(ct.Nanoseconds()) / n, decompNs: float64(dt.Nanoseconds()) / n})
	}
	return out
}
