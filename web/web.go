// Package web is the gateway's demo page: plain HTML, CSS and ES modules,
// embedded in the binary and talking to the gateway only through the public
// protocol (GET /v1/info, the WebSocket at /v1/ws).
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// FS holds the page's files rooted at the static directory: index.html,
// the stylesheet and the ES modules.
var FS fs.FS = mustSub(static, "static")

// ContentSecurityPolicy is the policy Handler sends with every file. It
// allows no inline script or style, so that even text that slipped into the
// DOM as markup could not run; connect-src admits the page's WebSocket.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none'; " +
	"base-uri 'none'; frame-ancestors 'none'"

// Handler serves FS for GET and HEAD, "/" being index.html, with the
// Content-Security-Policy above, X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer, and a strong ETag per file so that a
// browser revalidates (Cache-Control: no-cache) without downloading again.
// Mount it at the router's root: httpapi.Options.Page takes it.
func Handler() http.Handler {
	files := http.FileServerFS(FS)
	etags := fileETags(FS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if tag, ok := etags[name]; ok {
			// http.FileServer answers If-None-Match from this header.
			h.Set("ETag", tag)
		}
		files.ServeHTTP(w, r)
	})
}

// fileETags hashes every file of fsys once: the files are embedded, so
// they cannot change while the process runs.
func fileETags(fsys fs.FS) map[string]string {
	tags := make(map[string]string)
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		tags[name] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	if err != nil {
		panic("web: reading embedded files: " + err.Error())
	}
	return tags
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("web: " + err.Error())
	}
	return sub
}
