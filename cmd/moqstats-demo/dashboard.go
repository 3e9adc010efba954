package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

// The dashboard: one page and its script and style sheet, embedded, with
// no build step. The page reads the stats tracks from /stats/ as
// Server-Sent Events and computes everything it shows in the browser.
//
//go:embed web/index.html web/dashboard.css web/dashboard.js
var webFiles embed.FS

// contentSecurityPolicy lets the page load only its own script and style
// sheet and connect only to its own origin: a page that tried to reach
// anything else would be refused by the browser.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, served with an ETag of its contents so
// browsers revalidate instead of refetching.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func loadAsset(name, contentType string) asset {
	body, err := webFiles.ReadFile(name)
	if err != nil {
		panic("BUG: embedded asset missing: " + name)
	}
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

func (a asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// handleDashboard registers the page at "/" and its assets beside it.
func handleDashboard(mux *http.ServeMux) {
	mux.Handle("GET /{$}", loadAsset("web/index.html", "text/html; charset=utf-8"))
	mux.Handle("GET /dashboard.css", loadAsset("web/dashboard.css", "text/css; charset=utf-8"))
	mux.Handle("GET /dashboard.js", loadAsset("web/dashboard.js", "text/javascript; charset=utf-8"))
}
