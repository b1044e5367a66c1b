package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgateway/gateway/internal/metrics"
)

// TestReadmeCommands keeps the README's two commands true: the first runs
// this program, and the second is the test command that CI runs.
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile(`(?s)\n## Run it, test it\n(.*?)\n## `).FindSubmatch(readme)
	if section == nil {
		t.Fatal(`README.md has no "## Run it, test it" section`)
	}
	var cmds []string
	for line := range strings.SplitSeq(string(section[1]), "\n") {
		if strings.HasPrefix(line, "    ") {
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	if len(cmds) != 2 || cmds[0] != "go run ./cmd/gateway" {
		t.Fatalf("README.md's commands are %q, want exactly two, the first `go run ./cmd/gateway`", cmds)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cmds[1]) + `$`).Match(ci) {
		t.Errorf(".ci/run does not run README.md's test command %q on a line of its own", cmds[1])
	}
}

// TestDocLinks checks every relative link of the Markdown documentation:
// the file exists and, for a #fragment, so does the heading.
func TestDocLinks(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)#\s]*)(#[^)\s]*)?\)`)
	for _, doc := range append(docs, "../../README.md", "../../PROTOCOL.md") {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(text), -1) {
			path, fragment := m[1], strings.TrimPrefix(m[2], "#")
			if strings.Contains(path, "://") || strings.HasPrefix(path, "mailto:") {
				continue
			}
			target := doc
			if path != "" {
				target = filepath.Join(filepath.Dir(doc), path)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %s: %v", doc, m[0], err)
				continue
			}
			if fragment != "" && strings.HasSuffix(target, ".md") && !hasHeading(t, target, fragment) {
				t.Errorf("%s: link %s: %s has no heading %q", doc, m[0], target, fragment)
			}
		}
	}
}

// hasHeading reports whether the Markdown file has a heading whose
// GitHub anchor is anchor.
func hasHeading(t *testing.T, file, anchor string) bool {
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.*)$`).FindAllStringSubmatch(string(text), -1) {
		if slug(m[1]) == anchor {
			return true
		}
	}
	return false
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped,
// spaces as hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestMetricsDocumented checks that docs/OPERATIONS.md names every metric
// of the gateway's own (the Go runtime's and the process's are
// Prometheus's).
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	m := reflect.ValueOf(metrics.New()).Elem()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for i := range m.NumField() {
		if !m.Type().Field(i).IsExported() {
			continue
		}
		c, ok := m.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		descs := make(chan *prometheus.Desc, 16)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			if n := fqName.FindStringSubmatch(d.String()); n != nil {
				names = append(names, n[1])
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metrics: %v", len(names), names)
	}
	for _, n := range names {
		if !strings.Contains(string(doc), "`"+n) {
			t.Errorf("docs/OPERATIONS.md does not name the metric %s", n)
		}
	}
}
