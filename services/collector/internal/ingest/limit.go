package ingest

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per client address, in reports per second,
// with a bounded number of addresses: the least recently seen is forgotten
// (it comes back with a full bucket, which only favours a client that was
// quiet).
type limiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu    sync.Mutex
	addrs map[string]*bucket
	root  bucket // LRU list sentinel; root.next is the oldest
}

type bucket struct {
	key        string
	lim        *rate.Limiter
	prev, next *bucket
}

func newLimiter(perSecond, burst, maxAddrs int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	l := &limiter{rate: rate.Limit(perSecond), burst: burst, max: maxAddrs, addrs: map[string]*bucket{}}
	l.root.prev, l.root.next = &l.root, &l.root
	return l
}

// key is what one client is: an IPv4 address, or the /64 of an IPv6
// address (one household or phone gets a whole /64, so per-address limits
// on IPv6 would be limits on nothing).
func key(ip net.IP) string {
	if ip == nil {
		return ""
	}
	if v4 := ip.To4(); v4 != nil {
		return string(v4)
	}
	return string(ip.To16()[:8])
}

// allow takes n tokens from the client's bucket at now; when it cannot, it
// takes none and says how long to wait.
func (l *limiter) allow(ip net.IP, n int, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	k := key(ip)
	l.mu.Lock()
	b := l.addrs[k]
	if b == nil {
		if len(l.addrs) >= l.max {
			old := l.root.next
			l.unlink(old)
			delete(l.addrs, old.key)
		}
		b = &bucket{key: k, lim: rate.NewLimiter(l.rate, l.burst)}
		l.addrs[k] = b
	} else {
		l.unlink(b)
	}
	b.prev, b.next = l.root.prev, &l.root
	l.root.prev.next = b
	l.root.prev = b
	r := b.lim.ReserveN(now, n)
	l.mu.Unlock()
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// empty reports whether the client has no token at all, so a request can
// be refused before its body is read.
func (l *limiter) empty(ip net.IP, now time.Time) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.addrs[key(ip)]
	return b != nil && b.lim.TokensAt(now) < 1
}

func (l *limiter) unlink(b *bucket) {
	b.prev.next, b.next.prev = b.next, b.prev
}

// len is the number of addresses tracked.
func (l *limiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}
