package sim

import (
	"math/bits"
	"slices"
)

// wheel is the priority queue of sessions by due time: a calendar queue of
// ~1 ms slots covering ~34 s ahead, plus a binary heap for anything further
// out. Almost every session is due within a heartbeat interval, so pushes
// and pops are O(1) and touch memory sequentially, where a heap of 100k
// sessions spends most of its time on cache misses. The slot being served
// is sorted (descending, so the earliest entry pops from the end), which
// keeps the order exact: entries leave in due order.
const (
	slotShift = 20 // 2^20 ns ≈ 1.05 ms per slot
	wheelBits = 15 // 32768 slots ≈ 34 s
	wheelSize = 1 << wheelBits
	wheelMask = wheelSize - 1
)

type wheel struct {
	slots  [][]entry
	bits   []uint64 // non-empty slots
	cur    int64    // absolute slot; wheel entries have slots in [cur, cur+wheelSize)
	sorted int64    // absolute slot whose entries are sorted, or -1
	far    []entry  // min-heap of entries beyond the wheel
	n      int      // entries in the wheel and far
	inWh   int      // entries in the wheel
	minAt  int64    // slot of the entry last returned by peek, -1 for far
	minIdx int      // its index in the slot
}

func newWheel() wheel {
	return wheel{
		slots:  make([][]entry, wheelSize),
		bits:   make([]uint64, wheelSize/64),
		sorted: -1,
	}
}

func (w *wheel) len() int { return w.n }

// advance moves the wheel's start to the slot of time t (or to the first
// non-empty slot before it). Every later push is due at or after t.
func (w *wheel) advance(t int64) {
	ts := t >> slotShift
	if ts <= w.cur {
		return
	}
	if w.inWh == 0 {
		w.cur = ts
	} else {
		// All wheel entries lie within one revolution of cur, so one
		// revolution is enough to find the first of them (after a long
		// pause in the calls ts may be far ahead).
		w.cur = min(w.first(w.cur, min(ts, w.cur+wheelSize-1)), ts)
	}
	for len(w.far) > 0 && w.far[0].due>>slotShift < w.cur+wheelSize {
		x := w.popFar()
		w.pushWheel(x)
	}
}

// first returns the first non-empty absolute slot in [a, b], or b+1.
func (w *wheel) first(a, b int64) int64 {
	for a <= b {
		i := a & wheelMask
		if word := w.bits[i>>6] >> (i & 63); word != 0 {
			return min(a+int64(bits.TrailingZeros64(word)), b+1)
		}
		a += 64 - (i & 63)
	}
	return b + 1
}

func (w *wheel) push(x entry) {
	w.n++
	if x.due>>slotShift >= w.cur+wheelSize {
		w.pushFar(x)
		return
	}
	w.pushWheel(x)
}

func (w *wheel) pushWheel(x entry) {
	slot := max(x.due>>slotShift, w.cur)
	i := slot & wheelMask
	b := append(w.slots[i], x)
	if slot == w.sorted {
		// Keep the descending order: shift smaller entries right.
		j := len(b) - 1
		for j > 0 && b[j-1].due < x.due {
			b[j] = b[j-1]
			j--
		}
		b[j] = x
	}
	w.slots[i] = b
	w.bits[i>>6] |= 1 << (i & 63)
	w.inWh++
}

// peek returns the earliest entry; the queue must not be empty.
func (w *wheel) peek() entry {
	if w.inWh > 0 {
		slot := w.first(w.cur, w.cur+wheelSize-1)
		i := slot & wheelMask
		b := w.slots[i]
		if w.sorted != slot {
			slices.SortFunc(b, func(x, y entry) int {
				switch {
				case x.due > y.due:
					return -1
				case x.due < y.due:
					return 1
				}
				return 0
			})
			w.sorted = slot
		}
		w.minAt, w.minIdx = slot, len(b)-1
		return b[len(b)-1]
	}
	w.minAt = -1
	return w.far[0]
}

// peekWhere returns the earliest wheel entry whose session satisfies ok,
// looking at no more than limit entries. removePeeked removes it.
func (w *wheel) peekWhere(limit int, ok func(*session) bool) (entry, bool) {
	end := w.cur + wheelSize - 1
	for slot := w.first(w.cur, end); slot <= end && limit > 0; slot = w.first(slot+1, end) {
		b := w.slots[slot&wheelMask]
		best := -1
		for i := len(b) - 1; i >= 0 && limit > 0; i-- {
			limit--
			if ok(b[i].s) && (best < 0 || b[i].due < b[best].due) {
				best = i
				if slot == w.sorted {
					break // sorted descending: the first match is the earliest
				}
			}
		}
		if best >= 0 {
			w.minAt, w.minIdx = slot, best
			return b[best], true
		}
	}
	return entry{}, false
}

// removePeeked removes the entry the last peek returned; no push may come
// in between.
func (w *wheel) removePeeked() {
	w.n--
	if w.minAt < 0 {
		w.popFar()
		return
	}
	i := w.minAt & wheelMask
	b := w.slots[i]
	last := len(b) - 1
	switch {
	case w.minIdx == last:
	case w.minAt == w.sorted:
		copy(b[w.minIdx:], b[w.minIdx+1:])
	default:
		b[w.minIdx] = b[last]
	}
	b[last] = entry{}
	b = b[:last]
	w.slots[i] = b
	if len(b) == 0 {
		w.bits[i>>6] &^= 1 << (i & 63)
	}
	w.inWh--
}

// Binary min-heap for the far entries (rare: long pauses, long heartbeat
// intervals, planned ends beyond 34 s with no heartbeat before them).

func (w *wheel) pushFar(x entry) {
	h := append(w.far, x)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].due <= x.due {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
	w.far = h
}

func (w *wheel) popFar() entry {
	h := w.far
	top := h[0]
	n := len(h) - 1
	x := h[n]
	h[n] = entry{}
	h = h[:n]
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1].due < h[c].due {
			c++
		}
		if h[c].due >= x.due {
			break
		}
		h[i] = h[c]
		i = c
	}
	if n > 0 {
		h[i] = x
	}
	w.far = h
	return top
}
