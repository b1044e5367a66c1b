// Package web is the gateway's demo page: plain HTML, CSS and ES modules,
// embedded in the binary and talking to the gateway only through the public
// protocol (the WebSocket at /v1/ws, and the HTTP API for the info and to
// fetch a conversation's history in bulk).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// FS holds the page's files rooted at the static directory: index.html,
// the stylesheet and the ES modules.
var FS fs.FS = mustSub(static, "static")

// ContentSecurityPolicy is the policy Handler sends with every file. It
// allows no inline script or style, so that even text that slipped into the
// DOM as markup could not run. connect-src 'self' admits the page's
// WebSocket, which goes to the page's own host and port: in CSP Level 3
// 'self' matches ws: and wss: URLs of the page's origin too, and nothing
// else, so script that got in could not send what it reads to another
// host.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; object-src 'none'; " +
	"base-uri 'none'; frame-ancestors 'none'"

// immutable is the Cache-Control of a file under its versioned path,
// which changes whenever any file does.
const immutable = "public, max-age=31536000, immutable"

// Handler serves FS for GET and HEAD, with the Content-Security-Policy
// above, X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer.
// "/" is index.html, whose links to the other files point at
// assets/<version>/<name>, version being a hash of every file: those are
// cached for good (Cache-Control: immutable), so that a reload takes the
// modules from the browser's cache without asking, and a gateway with
// other files has other links. Everything else, index.html included, has
// a strong ETag so that a browser revalidates (Cache-Control: no-cache)
// without downloading again; so does a file under another version's path
// (a page loaded before an upgrade). Mount it at the router's root:
// httpapi.Options.Page takes it.
func Handler() http.Handler {
	return handler(FS)
}

func handler(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	etags := fileETags(fsys)
	version := versionOf(etags)
	index := versionLinks(fsys, version)
	indexTag := etag(index)
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
		if name == "" || name == "index.html" {
			h.Set("ETag", indexTag)
			http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
			return
		}
		if rest, ok := strings.CutPrefix(name, "assets/"); ok {
			v, file, _ := strings.Cut(rest, "/")
			if v == version {
				h.Set("Cache-Control", immutable)
			}
			name = file
			r = r.Clone(r.Context())
			r.URL.Path = "/" + file
		}
		if tag, ok := etags[name]; ok {
			// http.FileServer answers If-None-Match from this header.
			h.Set("ETag", tag)
		}
		files.ServeHTTP(w, r)
	})
}

// versionOf hashes the files' ETags into the version that names their
// immutable paths.
func versionOf(etags map[string]string) string {
	names := slices.Sorted(maps.Keys(etags))
	sum := sha256.New()
	for _, name := range names {
		fmt.Fprintf(sum, "%s %s\n", name, etags[name])
	}
	return hex.EncodeToString(sum.Sum(nil)[:8])
}

// link matches a src or href attribute with a relative URL.
var link = regexp.MustCompile(`\b(src|href)="([^"/#:?][^":?#]*)"`)

// versionLinks returns index.html with every link to a file of fsys
// pointing at the file's path under assets/<version>/. The modules' own
// imports are relative, so they resolve there too.
func versionLinks(fsys fs.FS, version string) []byte {
	data, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		panic("web: reading index.html: " + err.Error())
	}
	return link.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := link.FindSubmatch(m)
		if fi, err := fs.Stat(fsys, string(sub[2])); err != nil || fi.IsDir() {
			return m
		}
		return fmt.Appendf(nil, `%s="assets/%s/%s"`, sub[1], version, sub[2])
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
		tags[name] = etag(data)
		return nil
	})
	if err != nil {
		panic("web: reading embedded files: " + err.Error())
	}
	return tags
}

// etag is the strong ETag of data.
func etag(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("web: " + err.Error())
	}
	return sub
}
