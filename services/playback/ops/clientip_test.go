package ops_test

import (
	"net"
	"net/http/httptest"
	"testing"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
)

// TestClientIP: X-Forwarded-For counts only from a trusted proxy, and only
// its last hop (the address the proxy saw; the hops before it are the
// client's own claims).
func TestClientIP(t *testing.T) {
	trusted, err := envconf.CIDRs("X", []string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil || len(trusted) != 2 || trusted[1].String() != "192.0.2.7/32" {
		t.Fatalf("CIDRs: %v %v", trusted, err)
	}
	if _, err := envconf.CIDRs("PROXIES", []string{"10.0.0.0/33"}); err == nil || err.Error()[:8] != "PROXIES:" {
		t.Fatalf("a bad CIDR: %v", err)
	}
	for _, tt := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.5:1234", nil, "203.0.113.5"},
		{"203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"}, // not a proxy: ignored
		{"10.1.1.1:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"192.0.2.7:1234", []string{"1.2.3.4, 198.51.100.2"}, "198.51.100.2"},
		{"10.1.1.1:1234", []string{"1.2.3.4", "198.51.100.3"}, "198.51.100.3"},
		{"10.1.1.1:1234", []string{"not-an-ip"}, "10.1.1.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.peer
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ops.ClientIP(r, trusted); !got.Equal(net.ParseIP(tt.want)) {
			t.Errorf("peer %s, X-Forwarded-For %v: %s, want %s", tt.peer, tt.xff, got, tt.want)
		}
	}
}
