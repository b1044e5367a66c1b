package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryFuzzTargetInCI checks that .ci/run fuzzes every fuzz target of
// the repository, in its own package: a target it leaves out runs only
// its seed corpus, as a unit test.
func TestEveryFuzzTargetInCI(t *testing.T) {
	t.Parallel()
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	target := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(\w+ \*testing\.F\)`)
	found := 0
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg := "./" + filepath.ToSlash(strings.TrimPrefix(filepath.Dir(path), "../../"))
		if filepath.Dir(path) == "../.." {
			pkg = "."
		}
		for _, m := range target.FindAllSubmatch(src, -1) {
			found++
			line := "-fuzz='^" + string(m[1]) + "$'"
			if !regexp.MustCompile(`(?m)^go test .*` + regexp.QuoteMeta(line) + ` .* ` + regexp.QuoteMeta(pkg) + `$`).Match(ci) {
				t.Errorf("%s (%s) is not fuzzed in .ci/run: add go test -run='^$' %s -fuzztime=…x %s", m[1], path, line, pkg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no fuzz target found")
	}
}
