package ingest

import (
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

func TestDeviceClass(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36":        DeviceTV,
		"Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager": DeviceTV,
		"Mozilla/5.0 (Linux; Android 11; AFTKA) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0.5359.159 Safari/537.36":         DeviceTV,
		"Roku/DVP-12.0 (12.0.0.4182-88)": DeviceTV,
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1": DeviceMobile,
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36":                   DeviceMobile,
		"Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1":          DeviceTablet,
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36":                         DeviceDesktop,
		// Headless Chromium (the player tests) is a desktop by its OS.
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0.0.0 Safari/537.36": DeviceDesktop,
		"":          DeviceUnknown,
		"curl/8.11": DeviceUnknown,
	} {
		if got := deviceClassCached(ua); got != want {
			t.Errorf("%q: %s, want %s", ua, got, want)
		}
	}
}

// TestLimiter: a bucket per address (an IPv6 /64 is one client), refusals
// say how long to wait, and the addresses tracked stay bounded.
func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(10, 20, 3)
	a := net.ParseIP("203.0.113.1")
	if ok, _ := l.allow(a, 20, now); !ok {
		t.Fatal("the burst must pass")
	}
	ok, wait := l.allow(a, 5, now)
	if ok || wait != 500*time.Millisecond || !l.empty(a, now) {
		t.Fatalf("over the burst: ok %v, wait %s", ok, wait)
	}
	if ok, _ := l.allow(a, 5, now.Add(500*time.Millisecond)); !ok {
		t.Fatal("refilled at 10/s")
	}
	v6a, v6b := net.ParseIP("2001:db8:1:2::1"), net.ParseIP("2001:db8:1:2:ffff::9")
	l.allow(v6a, 20, now)
	if ok, _ := l.allow(v6b, 1, now); ok {
		t.Fatal("two addresses of one /64 must share a bucket")
	}
	for i := range 10 {
		l.allow(net.IPv4(198, 51, 100, byte(i)), 1, now)
	}
	if l.len() != 3 {
		t.Fatalf("%d addresses tracked, want 3", l.len())
	}
	if newLimiter(0, 1, 1) != nil {
		t.Fatal("rate 0 is no limit")
	}
}

// TestCountryOnlyFromTrustedProxies: the country header counts only from
// a trusted proxy, and only as a two-letter code.
func TestCountryOnlyFromTrustedProxies(t *testing.T) {
	_, proxies, _ := net.ParseCIDR("10.0.0.0/8")
	e := &Edge{opts: Options{CountryHeader: "CF-IPCountry", TrustedProxies: []*net.IPNet{proxies}}}
	for _, tt := range []struct{ peer, value, want string }{
		{"10.1.2.3:5000", "de", "DE"},
		{"203.0.113.9:5000", "DE", ""},
		{"10.1.2.3:5000", "<b>", ""},
		{"10.1.2.3:5000", "DEU", ""},
	} {
		r := httptest.NewRequest("POST", "/v1/cmcd", nil)
		r.RemoteAddr = tt.peer
		r.Header.Set("CF-IPCountry", tt.value)
		if got := e.country(r); got != tt.want {
			t.Errorf("%s says %q: %q, want %q", tt.peer, tt.value, got, tt.want)
		}
	}
}
