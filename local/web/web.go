// Package web holds the demo page and the operator dashboard of the local harness: plain HTML,
// CSS and JavaScript embedded in the binary, with no build step and nothing fetched from a CDN,
// so `go run ./local` works offline.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed index.html dashboard.html app.css app.js dashboard.js operator.js tcgsdk-local.js carqueue.js
var files embed.FS

// crossOrigin lists the files any page may load from any origin: pages served elsewhere (an
// integrator's own) load the TCGSDK stand-in in place of the real SDK, and import the queue's
// browser client (a module, so fetched with CORS).
var crossOrigin = map[string]bool{"tcgsdk-local.js": true, "carqueue.js": true}

// pages maps the clean URLs to their files; every other file is served under its own name.
var pages = map[string]string{
	"/":          "index.html",
	"/dashboard": "dashboard.html",
}

// name returns the embedded file for a URL path, or "".
func name(urlPath string) string {
	if n, ok := pages[urlPath]; ok {
		return n
	}
	n := strings.TrimPrefix(path.Clean(urlPath), "/")
	if n == "" || strings.HasSuffix(n, ".html") { // the pages only under their clean URLs
		return ""
	}
	if _, err := fs.Stat(files, n); err != nil {
		return ""
	}
	return n
}

// Has reports whether urlPath is one of the pages or their files.
func Has(urlPath string) bool { return name(urlPath) != "" }

// Handler serves the pages and their files. Caching is off: the files change with the binary,
// and a stale app.js against a newer harness would only confuse.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := name(r.URL.Path)
		if n == "" {
			http.NotFound(w, r)
			return
		}
		b, err := files.ReadFile(n)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		switch path.Ext(n) {
		case ".html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		case ".css":
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
		case ".js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		if crossOrigin[n] {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}
