package ops

import (
	"net"
	"net/http"
	"strings"
)

// ClientIP is the address of the client behind r: the TCP peer, or, when
// the peer is one of the trusted proxies, the address that proxy appended to
// X-Forwarded-For (the last hop of the last header; earlier hops were written
// by the client and prove nothing). Per-address limits key on it.
func ClientIP(r *http.Request, trusted []*net.IPNet) net.IP {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || !Trusted(ip, trusted) {
		return ip
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return ip
	}
	hops := strings.Split(xff[len(xff)-1], ",")
	if last := net.ParseIP(strings.TrimSpace(hops[len(hops)-1])); last != nil {
		return last
	}
	return ip
}

// Trusted reports whether ip is in one of the networks.
func Trusted(ip net.IP, nets []*net.IPNet) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
