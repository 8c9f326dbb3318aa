package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed dashboard
var assets embed.FS

// dashboard serves the embedded dashboard assets.
func dashboard() http.Handler {
	static, _ := fs.Sub(assets, "dashboard")
	return http.FileServerFS(static)
}
