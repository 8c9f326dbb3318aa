package hub

import "strconv"

// Position is the last offset a client received from one partition.
type Position struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Gap says which records of a partition a resume could not replay.
type Gap struct {
	Type      string `json:"type"` // "gap"
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int64  `json:"from_offset"`
	To        *int64 `json:"to_offset"` // inclusive; null when unknown
	Reason    string `json:"reason"`    // expired, too_many, unknown
}

// Gap reasons.
const (
	GapExpired = "expired"
	GapTooMany = "too_many"
	GapUnknown = "unknown"
)

// replay finds the events a resuming client missed: events of the given
// partitions with a greater offset than its position, received before seq
// c0 (later ones reach it with the live tail), matching f, not older than
// the resume window; at most limit of them, the newest, oldest first. Every
// partition whose missed events are not all returned gets a Gap.
func (h *Hub) replay(positions []Position, c0 uint64, f *compiled, limit int, cutoffMS int64) (items [][]byte, gaps []Gap, dedupe map[uint32]int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	type want struct {
		pos  int64
		done bool
		gap  *Gap
	}
	byPid := map[uint32]*want{}
	dedupe = map[uint32]int64{}
	for _, p := range positions {
		pid, ok := h.pids[topicPartition{p.Topic, p.Partition}]
		if !ok {
			gaps = append(gaps, Gap{Type: "gap", Topic: p.Topic, Partition: p.Partition, From: p.Offset + 1, Reason: GapUnknown})
			continue
		}
		if w, dup := byPid[pid]; dup {
			w.pos = min(w.pos, p.Offset)
			continue
		}
		byPid[pid] = &want{pos: p.Offset}
		dedupe[pid] = p.Offset
	}
	size := uint64(len(h.ring))
	oldest := h.first
	c0 = min(c0, h.next)
	open := len(byPid)
	for s := c0; s > oldest && open > 0; s-- {
		it := &h.ring[(s-1)%size]
		w := byPid[it.pid]
		if w == nil || w.done {
			continue
		}
		if it.offset <= w.pos {
			w.done = true // reached the client's position: nothing older is missing
			open--
			continue
		}
		if it.ts < cutoffMS {
			to := it.offset
			w.gap = &Gap{Reason: GapExpired, To: &to}
			w.done = true
			open--
			continue
		}
		if !f.match(it) {
			continue
		}
		if len(items) < limit {
			items = append(items, it.json)
			continue
		}
		to := it.offset
		w.gap = &Gap{Reason: GapTooMany, To: &to}
		w.done = true
		open--
	}
	for pid, w := range byPid {
		if !w.done && h.covered[pid] > w.pos {
			to := h.covered[pid]
			w.gap = &Gap{Reason: GapExpired, To: &to}
		}
		if w.gap != nil {
			tp := h.parts[pid]
			g := *w.gap
			g.Type, g.Topic, g.Partition, g.From = "gap", tp.topic, tp.partition, w.pos+1
			gaps = append(gaps, g)
		}
	}
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	return items, gaps, dedupe
}

func (g Gap) String() string {
	to := "?"
	if g.To != nil {
		to = strconv.FormatInt(*g.To, 10)
	}
	return g.Topic + "/" + strconv.Itoa(int(g.Partition)) + " " + strconv.FormatInt(g.From, 10) + "-" + to + " " + g.Reason
}
