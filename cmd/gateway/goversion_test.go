package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGoVersion checks that go.mod asks for no more than the README's
// "Go X.Y": a go line of X.Y.0 and no toolchain line, because any newer
// patch or toolchain makes the go command of an older X.Y download one,
// which fails offline.
func TestGoVersion(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)(\.\d+)?$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	minor, patch := string(m[1]), string(m[2])
	if patch != "" && patch != ".0" {
		t.Errorf("go.mod says go %s%s: an older Go %s.x would download a toolchain; say go %s.0", minor, patch, minor, minor)
	}
	if regexp.MustCompile(`(?m)^toolchain `).Match(mod) {
		t.Error("go.mod has a toolchain line, which makes an older Go download that toolchain")
	}
	if !strings.Contains(string(readme), "Go "+minor+" ") {
		t.Errorf("README.md does not say which Go it needs as Go %s", minor)
	}
}
