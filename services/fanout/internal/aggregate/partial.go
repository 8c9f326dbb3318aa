package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A partial is one second of one raw partition's figures, as an aggregator
// publishes it to the aggregates topic (docs/architecture.md, "Aggregation
// tier"). The counts of a second are sums, so partials of different
// partitions add up exactly; the startup histogram is the same log-linear
// one the single process keeps, so its percentiles merge exactly too.
//
// The viewers, the titles' viewers and the sessions are states, not sums:
// a partial of the newest second a shard has (latest) carries them as
// they are at its end, and the merge keeps the newest one per partition.
type partial struct {
	topic   string
	part    int32
	sec     int64
	latest  bool
	lastTS  int64 // the partition's newest record, Unix ms
	tracked uint64
	evicted uint64
	scopes  []partialScope
	titles  []titleCount
}

type partialScope struct {
	kind   uint8 // scopeOverall, scopeStream, scopeSource, scopeDim+dimension
	name   string
	lastTS int64
	b      counts
	ccv    int64         // latest only: viewers at the end of the second
	by     []sourceCount // latest stream scopes only: by sourceIndex
}

type titleCount struct {
	id  string
	ccv int64
}

const (
	scopeOverall = iota
	scopeStream
	scopeSource
	scopeDim      // + dimension
	numScopeKinds = scopeDim + numDims
)

const partialVersion = 1

// maxPartialStrings bounds what a decoded partial may hold, so that a
// corrupt or hostile record cannot make the merge allocate without bound.
const (
	maxPartialScopes = 1 << 14
	maxPartialTitles = 1 << 20
	maxPartialString = 1024
)

// PartialKey is the aggregates topic key of a partial: one per raw topic,
// partition and second, so a republished partial replaces the old one.
// Topic names cannot hold a "/" (Kafka allows [a-zA-Z0-9._-]).
func PartialKey(topic string, partition int32, sec int64) []byte {
	return fmt.Appendf(nil, "%s/%d/%d", topic, partition, sec)
}

// parseKey splits a partial's key.
func parseKey(key []byte) (topic string, part int32, sec int64, err error) {
	f := strings.Split(string(key), "/")
	if len(f) != 3 || f[0] == "" {
		return "", 0, 0, errPartial("key")
	}
	p, err1 := strconv.ParseInt(f[1], 10, 32)
	s, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || p < 0 {
		return "", 0, 0, errPartial("key")
	}
	return f[0], int32(p), s, nil
}

// PartialError is a partial the merge cannot use; Reason names why, for
// the bad-record counter.
type PartialError struct{ Reason string }

func (e *PartialError) Error() string { return "bad partial: " + e.Reason }

func errPartial(reason string) error { return &PartialError{Reason: reason} }

// ReasonOf is the counter label of an ApplyPartial error.
func ReasonOf(err error) string {
	var pe *PartialError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return "other"
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendSparse writes the nonzero entries of v as (index, value) pairs.
func appendSparse[T uint16 | uint32 | uint64](b []byte, v []T) []byte {
	n := 0
	for _, x := range v {
		if x != 0 {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i, x := range v {
		if x != 0 {
			b = binary.AppendUvarint(b, uint64(i))
			b = binary.AppendUvarint(b, uint64(x))
		}
	}
	return b
}

func appendCounts(b []byte, c *counts) []byte {
	b = appendSparse(b, c.byType[:])
	for _, v := range [...]uint32{c.attempts, c.plays, c.startFail, c.ebvs, c.pbFail, c.ended, c.stalls} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	b = binary.AppendVarint(b, int64(c.ccvDelta))
	b = binary.AppendUvarint(b, c.playMS)
	b = binary.AppendUvarint(b, c.stallMS)
	b = binary.AppendUvarint(b, c.bitrateMS)
	b = appendSparse(b, c.rungMS[:])
	return appendSparse(b, c.startup[:])
}

func (p *partial) encode(b []byte) []byte {
	b = append(b, partialVersion)
	flags := byte(0)
	if p.latest {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, p.lastTS)
	if p.latest {
		b = binary.AppendUvarint(b, p.tracked)
		b = binary.AppendUvarint(b, p.evicted)
	}
	b = binary.AppendUvarint(b, uint64(len(p.scopes)))
	for i := range p.scopes {
		s := &p.scopes[i]
		b = append(b, s.kind)
		b = appendString(b, s.name)
		b = binary.AppendVarint(b, s.lastTS)
		b = appendCounts(b, &s.b)
		if p.latest {
			b = binary.AppendVarint(b, s.ccv)
			if s.kind == scopeStream {
				b = binary.AppendUvarint(b, uint64(len(s.by)))
				for _, c := range s.by {
					b = binary.AppendUvarint(b, c.events)
					b = binary.AppendVarint(b, c.lastTS)
					b = binary.AppendVarint(b, c.ccv)
				}
			}
		}
	}
	if p.latest {
		b = binary.AppendUvarint(b, uint64(len(p.titles)))
		for _, t := range p.titles {
			b = appendString(b, t.id)
			b = binary.AppendVarint(b, t.ccv)
		}
	}
	return b
}

// reader decodes a partial; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(reason string) {
	if r.err == nil {
		r.err = errPartial(reason)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > maxPartialString || n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a length and checks it against limit.
func (r *reader) count(limit int) int {
	n := r.uvarint()
	if n > uint64(limit) {
		r.fail("length")
		return 0
	}
	return int(n)
}

func readSparse[T uint16 | uint32 | uint64](r *reader, v []T) {
	n := r.count(len(v))
	for range n {
		i, x := r.uvarint(), r.uvarint()
		if r.err != nil {
			return
		}
		if i >= uint64(len(v)) || uint64(T(x)) != x {
			r.fail("range")
			return
		}
		v[i] = T(x)
	}
}

func (r *reader) u32() uint32 {
	v := r.uvarint()
	if v > 1<<32-1 {
		r.fail("range")
	}
	return uint32(v)
}

func (r *reader) counts(c *counts) {
	readSparse(r, c.byType[:])
	for _, f := range [...]*uint32{&c.attempts, &c.plays, &c.startFail, &c.ebvs, &c.pbFail, &c.ended, &c.stalls} {
		*f = r.u32()
	}
	d := r.varint()
	if d != int64(int32(d)) {
		r.fail("range")
	}
	c.ccvDelta = int32(d)
	c.playMS, c.stallMS, c.bitrateMS = r.uvarint(), r.uvarint(), r.uvarint()
	readSparse(r, c.rungMS[:])
	readSparse(r, c.startup[:])
}

// decodePartial decodes the record (key, value) of the aggregates topic.
func decodePartial(key, value []byte) (*partial, error) {
	p, n, err := decodePartialN(key, value, true)
	if err == nil && n != len(value) {
		return nil, errPartial("trailing")
	}
	return p, err
}

// decodePartialN decodes a partial, with its titles or without (a
// History needs none: then the titles, which come last, are neither read
// nor checked); n is the length of value read.
func decodePartialN(key, value []byte, titles bool) (p *partial, n int, err error) {
	topic, part, sec, err := parseKey(key)
	if err != nil {
		return nil, 0, err
	}
	p = &partial{topic: topic, part: part, sec: sec}
	r := &reader{b: value}
	if v := r.byte(); r.err == nil && v != partialVersion {
		return nil, 0, errPartial("version")
	}
	flags := r.byte()
	p.latest = flags&1 != 0
	p.lastTS = r.varint()
	if p.latest {
		p.tracked, p.evicted = r.uvarint(), r.uvarint()
	}
	ns := r.count(maxPartialScopes)
	p.scopes = make([]partialScope, 0, min(ns, 64))
	for range ns {
		s := partialScope{kind: r.byte(), name: r.string(), lastTS: r.varint()}
		if s.kind >= numScopeKinds {
			r.fail("scope")
		}
		s.b.sec = sec
		r.counts(&s.b)
		if p.latest {
			s.ccv = r.varint()
			if s.kind == scopeStream {
				s.by = make([]sourceCount, r.count(len(sourceNames)))
				for i := range s.by {
					s.by[i] = sourceCount{events: r.uvarint(), lastTS: r.varint(), ccv: r.varint()}
				}
			}
		}
		if r.err != nil {
			return nil, 0, r.err
		}
		p.scopes = append(p.scopes, s)
	}
	if p.latest && titles {
		n := r.count(maxPartialTitles)
		p.titles = make([]titleCount, 0, min(n, 1024))
		for range n {
			t := titleCount{id: r.string(), ccv: r.varint()}
			if r.err != nil {
				return nil, 0, r.err
			}
			p.titles = append(p.titles, t)
		}
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	return p, len(value) - len(r.b), nil
}

// add adds (sign > 0) or takes away the counts of o.
func (b *counts) add(o *counts, sign int) {
	if sign > 0 {
		for i, v := range o.byType {
			b.byType[i] += v
		}
		b.attempts += o.attempts
		b.plays += o.plays
		b.startFail += o.startFail
		b.ebvs += o.ebvs
		b.pbFail += o.pbFail
		b.ended += o.ended
		b.stalls += o.stalls
		b.ccvDelta += o.ccvDelta
		b.playMS += o.playMS
		b.stallMS += o.stallMS
		b.bitrateMS += o.bitrateMS
		for i, v := range o.rungMS {
			b.rungMS[i] += v
		}
		for i, v := range o.startup {
			b.startup[i] = satAdd(b.startup[i], v)
		}
		return
	}
	for i, v := range o.byType {
		b.byType[i] -= v
	}
	b.attempts -= o.attempts
	b.plays -= o.plays
	b.startFail -= o.startFail
	b.ebvs -= o.ebvs
	b.pbFail -= o.pbFail
	b.ended -= o.ended
	b.stalls -= o.stalls
	b.ccvDelta -= o.ccvDelta
	b.playMS -= o.playMS
	b.stallMS -= o.stallMS
	b.bitrateMS -= o.bitrateMS
	for i, v := range o.rungMS {
		b.rungMS[i] -= v
	}
	for i, v := range o.startup {
		b.startup[i] -= min(v, b.startup[i])
	}
}

func satAdd(a, b uint16) uint16 {
	if s := uint32(a) + uint32(b); s <= 0xffff {
		return uint16(s)
	}
	return 0xffff
}

func (b *counts) events() uint64 {
	var n uint64
	for _, v := range b.byType {
		n += uint64(v)
	}
	return n
}
