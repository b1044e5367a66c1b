package web_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
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
		{"root is index.html", "/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
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
