package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The dashboard is built from ui/ (`make dashboard`: esbuild bundles
// ui/src with uPlot) into dashboard/, which is committed, so `go build`
// needs no Node; a test in tests/e2e fails when it differs from a fresh
// build. docs/dashboard.md describes the page.
//
//go:embed dashboard
var assets embed.FS

// Cache lifetimes: assets under assets/ have a content hash in their name
// and never change; index.html names the current ones and is revalidated on
// every load.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheRevalid   = "no-cache"
)

type asset struct {
	body, gz     []byte // gz: the build's pre-compressed copy, or nil
	ctype        string
	etag, gzEtag string
	cache        string
}

var (
	staticOnce  sync.Once
	staticFiles map[string]*asset // URL path → asset
)

// loadAssets indexes the embedded files once.
func loadAssets() map[string]*asset {
	staticOnce.Do(func() {
		staticFiles = map[string]*asset{}
		root, err := fs.Sub(assets, "dashboard")
		if err != nil {
			panic(err)
		}
		_ = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(name, ".gz") {
				return err
			}
			body, err := fs.ReadFile(root, name)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			a := &asset{body: body, ctype: contentType(name), etag: `"` + hex.EncodeToString(sum[:8]) + `"`, cache: cacheRevalid}
			if gz, err := fs.ReadFile(root, name+".gz"); err == nil && len(gz) < len(body) {
				a.gz = gz
				a.gzEtag = `"` + hex.EncodeToString(sum[:8]) + `-gz"`
			}
			if strings.HasPrefix(name, "assets/") {
				a.cache = cacheImmutable
			}
			staticFiles["/"+name] = a
			return nil
		})
		if idx, ok := staticFiles["/index.html"]; ok {
			staticFiles["/"] = idx
		}
	})
	return staticFiles
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// dashboard serves the embedded dashboard: index.html at / (no-cache, with
// an ETag), hashed assets under /assets/ (cached for a year, immutable),
// gzip-compressed when the client accepts it. Anything else is 404.
func dashboard() http.Handler {
	files := loadAssets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := files[r.URL.Path]
		if !ok {
			w.Header().Set("Cache-Control", "no-store")
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", a.cache)
		body, etag := a.body, a.etag
		if a.gz != nil {
			h.Add("Vary", "Accept-Encoding")
			if acceptsGzip(r.Header.Get("Accept-Encoding")) {
				body, etag = a.gz, a.gzEtag
				h.Set("Content-Encoding", "gzip")
				// ServeContent leaves out Content-Length of encoded bodies;
				// they are small and whole, so say it and serve no ranges.
				h.Set("Content-Length", strconv.Itoa(len(body)))
				r.Header.Del("Range")
			}
		}
		h.Set("ETag", etag)
		// ServeContent answers If-None-Match (304), HEAD and ranges.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: listed
// with a non-zero quality, or not listed and allowed by "*".
func acceptsGzip(header string) bool {
	gzipQ, starQ := -1.0, -1.0
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if name == "gzip" {
			gzipQ = q
		} else {
			starQ = q
		}
	}
	return gzipQ > 0 || (gzipQ < 0 && starQ > 0)
}
