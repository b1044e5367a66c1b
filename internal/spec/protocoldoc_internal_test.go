package spec

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestProtocolExamples checks the frames PROTOCOL.md shows against the
// document: the lines of its json blocks (frames the gateway sends), and
// the wscat lines of its indented examples ("> " a request, "< " a frame
// the gateway sends) that it does not shorten with "…", without the
// comments after them.
func TestProtocolExamples(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	text := readProtocolDoc(t)
	var checked int
	inJSON := false
	for i, line := range strings.Split(text, "\n") {
		where := "PROTOCOL.md:" + strconv.Itoa(i+1)
		switch {
		case strings.HasPrefix(line, "```json"):
			inJSON = true
		case strings.HasPrefix(line, "```"):
			inJSON = false
		case inJSON && strings.HasPrefix(line, "{"):
			checked++
			if err := s.ServerFrame([]byte(line)); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		case strings.Contains(line, "…"):
		case strings.HasPrefix(line, "    > {"):
			checked++
			if err := s.ClientFrame(frame(line)); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		case strings.HasPrefix(line, "    < {"):
			checked++
			if err := s.ServerFrame(frame(line)); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	if checked < 40 {
		t.Errorf("checked only %d example frames", checked)
	}
}

// frame is the JSON of a wscat line: from the "{" after "> " or "< " to
// the last "}".
func frame(line string) []byte {
	return []byte(line[6 : strings.LastIndex(line, "}")+1])
}

// TestProtocolErrorTable checks PROTOCOL.md's table of error codes: a row
// for every code, with the HTTP status the gateway answers it with.
func TestProtocolErrorTable(t *testing.T) {
	text := readProtocolDoc(t)
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|.*\\| ([0-9]{3}) \\|$")
	rows := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(text, -1) {
		rows[m[1]], _ = strconv.Atoi(m[2])
	}
	for name, code := range protocolConsts(t) {
		if !strings.HasPrefix(name, "Code") {
			continue
		}
		status, ok := rows[code]
		switch {
		case !ok:
			t.Errorf("PROTOCOL.md's error table has no row for %s", code)
		case status != protocol.HTTPStatus(code):
			t.Errorf("PROTOCOL.md gives %s HTTP %d; the gateway answers %d", code, status, protocol.HTTPStatus(code))
		}
	}
}

func readProtocolDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(), "..", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
