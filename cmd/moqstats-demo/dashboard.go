package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// The dashboard: one page and its scripts and style sheet, embedded, with
// no build step. The page reads the stats tracks from one of two sources,
// Server-Sent Events from /stats/ (the default) or moq-lite (?source=moq:
// @moq/lite over WebTransport, from /js/), and computes everything it
// shows in the browser.
//
//go:embed web/index.html web/dashboard.css web/dashboard.js web/moq-source.js
var webFiles embed.FS

// importMapMarker is where index.html takes the import map.
const importMapMarker = "<!--importmap-->"

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
	csp         string
}

func loadAsset(name, contentType string) asset {
	body, err := webFiles.ReadFile(name)
	if err != nil {
		panic("BUG: embedded asset missing: " + name)
	}
	return newAsset(body, contentType, contentSecurityPolicy)
}

func newAsset(body []byte, contentType, csp string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, csp: csp}
}

// indexPage is index.html with importMap (none when nil) in place of
// its marker, and the policy that lets that one inline script run (by
// its hash) and no other.
func indexPage(importMap []byte) asset {
	page := loadAsset("web/index.html", "text/html; charset=utf-8")
	if !bytes.Contains(page.body, []byte(importMapMarker)) {
		panic("BUG: web/index.html lacks " + importMapMarker)
	}
	if importMap == nil {
		page.body = bytes.Replace(page.body, []byte(importMapMarker), nil, 1)
		return newAsset(page.body, page.contentType, contentSecurityPolicy)
	}
	// json.Marshal escapes <, > and &, so the map cannot end the script.
	script := `<script type="importmap">` + string(importMap) + `</script>`
	page.body = bytes.Replace(page.body, []byte(importMapMarker), []byte(script), 1)
	page.body = bytes.Replace(page.body, []byte(`<html lang="en">`), []byte(`<html lang="en" data-moq-lite="on">`), 1)
	sum := sha256.Sum256(importMap)
	csp := strings.Replace(contentSecurityPolicy, "script-src 'self'", "script-src 'self' 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'", 1)
	return newAsset(page.body, page.contentType, csp)
}

func (a asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", a.csp)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// handleDashboard registers the page at "/" and its assets beside it.
// With modules (a node_modules directory holding @moq/lite, or nil), it
// also serves their JavaScript under /js/ and gives the page their
// import map, which the moq-lite source needs.
func handleDashboard(mux *http.ServeMux, modules *jsModules) {
	var im []byte
	if modules != nil {
		im = modules.importMap
		mux.Handle("GET /js/", http.StripPrefix("/js", moduleFiles(modules.dir)))
	}
	mux.Handle("GET /{$}", indexPage(im))
	mux.Handle("GET /dashboard.css", loadAsset("web/dashboard.css", "text/css; charset=utf-8"))
	mux.Handle("GET /dashboard.js", loadAsset("web/dashboard.js", "text/javascript; charset=utf-8"))
	mux.Handle("GET /moq-source.js", loadAsset("web/moq-source.js", "text/javascript; charset=utf-8"))
}
