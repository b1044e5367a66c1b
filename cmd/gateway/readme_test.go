package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
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
