package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip body: %v", err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gzip body: %v", err)
		}
	}
	return b
}

var assetRef = regexp.MustCompile(`(?:src|href)="(assets/[a-z]+\.[0-9a-f]{12}\.(?:js|css|svg))"`)

// TestDashboardAssets checks what the browser gets: index.html revalidated
// on every load and naming content-hashed assets, which are cached for a
// year, compressed for clients that accept gzip and identical either way.
func TestDashboardAssets(t *testing.T) {
	h := dashboard()

	idx := get(t, h, "/", nil)
	if idx.StatusCode != 200 || idx.Header.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(idx.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %v", idx.StatusCode, idx.Header)
	}
	html := string(body(t, idx))
	if strings.Contains(html, "<script>") || strings.Contains(html, " style=") || regexp.MustCompile(`\son[a-z]+=`).MatchString(html) {
		t.Fatal("index.html must have no inline script, style attributes or event handler attributes")
	}
	refs := assetRef.FindAllStringSubmatch(html, -1)
	if len(refs) != 3 {
		t.Fatalf("index.html should reference app.js, app.css and the favicon by hashed name, found %v", refs)
	}
	for _, ref := range refs {
		p := "/" + ref[1]
		plain := get(t, h, p, nil)
		if plain.StatusCode != 200 || plain.Header.Get("Cache-Control") != cacheImmutable || plain.Header.Get("Content-Encoding") != "" {
			t.Fatalf("GET %s: %d %v", p, plain.StatusCode, plain.Header)
		}
		pb := body(t, plain)
		zipped := get(t, h, p, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
		if zipped.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(zipped.Header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("GET %s with gzip: %v", p, zipped.Header)
		}
		if zb := body(t, zipped); !bytes.Equal(pb, zb) {
			t.Fatalf("%s: gzip copy differs from the file (%d vs %d bytes)", p, len(zb), len(pb))
		}
		if zipped.Header.Get("ETag") == plain.Header.Get("ETag") {
			t.Fatalf("%s: the gzip and identity representations share an ETag", p)
		}
		notMod := get(t, h, p, map[string]string{"If-None-Match": plain.Header.Get("ETag")})
		if notMod.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with If-None-Match: %d, want 304", p, notMod.StatusCode)
		}
	}
	for _, p := range []string{"/assets/app.000000000000.js", "/app.js", "/index.html.gz", "/../go.mod"} {
		if resp := get(t, h, p, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                        false,
		"gzip":                    true,
		"gzip, deflate, br, zstd": true,
		"br;q=1.0, gzip;q=0.5":    true,
		"GZIP":                    true,
		"gzip;q=0":                false,
		"*":                       true,
		"gzip;q=0, *":             false,
		"identity":                false,
		"x-gzip":                  false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}
