package web

import (
	"regexp"
	"testing"
	"testing/fstest"
)

// TestVersionFollowsEveryFile checks that changing any file changes the
// version in index.html's links, so that no browser keeps an old file
// cached for good under a new page.
func TestVersionFollowsEveryFile(t *testing.T) {
	t.Parallel()
	page := func(app, style string) fstest.MapFS {
		return fstest.MapFS{
			"index.html": {Data: []byte(`<link rel="stylesheet" href="style.css"><script type="module" src="app.js"></script><a href="#top">`)},
			"app.js":     {Data: []byte(app)},
			"style.css":  {Data: []byte(style)},
		}
	}
	want := regexp.MustCompile(`^<link rel="stylesheet" href="assets/([0-9a-f]{16})/style.css"><script type="module" src="assets/([0-9a-f]{16})/app.js"></script><a href="#top">$`)
	version := func(fsys fstest.MapFS) string {
		t.Helper()
		index := string(versionLinks(fsys, versionOf(fileETags(fsys))))
		m := want.FindStringSubmatch(index)
		if m == nil || m[1] != m[2] {
			t.Fatalf("index.html served as %s, want both files under one assets/<version>/", index)
		}
		return m[1]
	}
	base := version(page("a", "s"))
	if v := version(page("a", "s")); v != base {
		t.Errorf("the same files give versions %s and %s", base, v)
	}
	if version(page("b", "s")) == base || version(page("a", "t")) == base {
		t.Errorf("a changed file keeps version %s", base)
	}
}
