package web_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/web"
)

func TestHandlerServesFilesWithHeaders(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name, path, wantType, wantBody string
	}{
		{"root is index.html", "/", "text/html; charset=utf-8", `<script type="module" src="assets/`},
		{"module", "/app.js", "text/javascript; charset=utf-8", "GatewaySocket"},
		{"stylesheet", "/style.css", "text/css; charset=utf-8", ".messages"},
		{"icon", "/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", res.StatusCode)
			}
			want := map[string]string{
				"Content-Type":            tt.wantType,
				"Content-Security-Policy": web.ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           "no-cache",
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body does not contain %q", tt.wantBody)
			}
			if res.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}
}

// assetLink is a link of the served index.html to a versioned file.
var assetLink = regexp.MustCompile(`(?:src|href)="(assets/([0-9a-f]+)/([^"]+))"`)

// TestHandlerCachesVersionedFilesForGood follows index.html's links:
// each points at its file under assets/<version>/, served with the file's
// content and Cache-Control: immutable; a path with another version (a
// page from before an upgrade) gets the file as it is now, revalidated.
func TestHandlerCachesVersionedFilesForGood(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(srv.URL + "/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /%s: status %d", path, res.StatusCode)
		}
		return res, string(body)
	}
	res, index := get("")
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index.html: Cache-Control %q, want no-cache", cc)
	}
	links := assetLink.FindAllStringSubmatch(index, -1)
	if len(links) < 5 {
		t.Fatalf("index.html links %d versioned files, want its style sheets, icon and modules:\n%s", len(links), index)
	}
	for _, l := range links {
		path, version, name := l[1], l[2], l[3]
		res, body := get(path)
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q, want immutable", path, cc)
		}
		if res.Header.Get("Content-Security-Policy") != web.ContentSecurityPolicy {
			t.Errorf("%s: no Content-Security-Policy", path)
		}
		if _, plain := get(name); body != plain {
			t.Errorf("%s differs from /%s", path, name)
		}
		if version != links[0][2] {
			t.Errorf("%s: version %s, want one version (%s) for every file", path, version, links[0][2])
		}
	}
	res, _ = get("assets/0123456789abcdef/app.js")
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("another version's path: Cache-Control %q, want no-cache", cc)
	}
}

// importLine matches a module's static import of another of the page's
// files.
var importLine = regexp.MustCompile(`(?m)^import .* from '\./([^']+)';$`)

// TestIndexFetchesEveryModuleAtOnce checks that index.html names every
// module the page imports (as a script or a modulepreload), so that the
// browser fetches them all at once instead of one import level at a time.
func TestIndexFetchesEveryModuleAtOnce(t *testing.T) {
	t.Parallel()
	index, err := fs.ReadFile(web.FS, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	named := make(map[string]bool)
	for _, m := range regexp.MustCompile(`<(?:script type="module" src|link rel="modulepreload" href)="([^"]+)"`).FindAllSubmatch(index, -1) {
		named[string(m[1])] = true
	}
	seen := map[string]bool{"app.js": true}
	todo := []string{"app.js"}
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if !named[name] {
			t.Errorf("index.html does not name %s", name)
		}
		data, err := fs.ReadFile(web.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range importLine.FindAllSubmatch(data, -1) {
			dep := path.Join(path.Dir(name), string(m[1]))
			if !seen[dep] {
				seen[dep] = true
				todo = append(todo, dep)
			}
		}
	}
	if len(seen) < 8 {
		t.Fatalf("found %d modules from app.js, want the page's and the vendored ones", len(seen))
	}
}

func TestHandlerRevalidatesWithETag(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL + "/view.js")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/view.js", nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("status %d with a matching If-None-Match, want 304", res.StatusCode)
	}
}

func TestHandlerRefuses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"missing file", http.MethodGet, "/nope.js", http.StatusNotFound},
		{"post", http.MethodPost, "/", http.StatusMethodNotAllowed},
		{"delete", http.MethodDelete, "/app.js", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
		})
	}
}

var scriptTag = regexp.MustCompile(`(?i)<script\b[^>]*>`)

// TestPageSourceIsSafe checks the page's own source for what the CSP or
// the "model text is text" rule forbids, so that a change that would only
// fail in a browser (or not at all) fails here.
func TestPageSourceIsSafe(t *testing.T) {
	t.Parallel()
	forbidden := []struct {
		name string
		re   *regexp.Regexp
		ext  string
	}{
		{"innerHTML", regexp.MustCompile(`innerHTML`), ""},
		{"outerHTML", regexp.MustCompile(`outerHTML`), ""},
		{"insertAdjacentHTML", regexp.MustCompile(`insertAdjacentHTML`), ""},
		{"document.write", regexp.MustCompile(`document\.write`), ""},
		{"eval", regexp.MustCompile(`\beval\(|new Function\(`), ".js"},
		{"style attribute", regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`), ".html"},
		{"style attribute set from script", regexp.MustCompile(`setAttribute\(\s*['"]style`), ".js"},
		{"inline event handler", regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`), ".html"},
		{"inline script", regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>[^<]`), ".html"},
		{"inline style element", regexp.MustCompile(`(?i)<style`), ".html"},
		{"javascript: URL", regexp.MustCompile(`(?i)javascript:`), ""},
	}
	files := 0
	err := fs.WalkDir(web.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "vendor" {
			// Vendored libraries are checked by checksum instead
			// (TestVendoredFilesAreTheReleasedOnes); DOMPurify, for one,
			// uses innerHTML to parse what it sanitizes.
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".html") {
			return nil
		}
		files++
		data, err := fs.ReadFile(web.FS, name)
		if err != nil {
			return err
		}
		for _, tag := range scriptTag.FindAll(data, -1) {
			if !strings.Contains(string(tag), " src=") {
				t.Errorf("%s: script element without src: %s", name, tag)
			}
		}
		for _, f := range forbidden {
			if f.ext != "" && !strings.HasSuffix(name, f.ext) {
				continue
			}
			if loc := f.re.FindIndex(data); loc != nil {
				t.Errorf("%s: %s at byte %d: %q", name, f.name, loc[0], data[loc[0]:loc[1]])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("checked %d files, want the page's html and modules", files)
	}
}

var checksumLine = regexp.MustCompile(`(?m)^    ([0-9a-f]{64})  \./(\S+)$`)

// TestVendoredFilesAreTheReleasedOnes checks every file under vendor/
// against the checksum vendor/README.md records for it, so that a vendored
// library is never edited by hand or left undocumented.
func TestVendoredFilesAreTheReleasedOnes(t *testing.T) {
	t.Parallel()
	readme, err := fs.ReadFile(web.FS, "vendor/README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]string)
	for _, m := range checksumLine.FindAllStringSubmatch(string(readme), -1) {
		want["vendor/"+m[2]] = m[1]
	}
	if len(want) == 0 {
		t.Fatal("vendor/README.md lists no checksums")
	}
	err = fs.WalkDir(web.FS, "vendor", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || name == "vendor/README.md" {
			return err
		}
		data, err := fs.ReadFile(web.FS, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		switch w, ok := want[name]; {
		case !ok:
			t.Errorf("%s is not listed in vendor/README.md", name)
		case w != hex.EncodeToString(sum[:]):
			t.Errorf("%s: sha256 %x, vendor/README.md says %s", name, sum, w)
		}
		delete(want, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range want {
		t.Errorf("vendor/README.md lists %s, which is not there", name)
	}
}
