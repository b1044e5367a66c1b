package agent

import (
	"os"
	"testing"
)

// FuzzParse feeds the agents-file parser arbitrary bytes: it must never
// panic, and a file it accepts must be valid.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, seed := range []string{
		"",
		agentsOnly,
		`{"tools":[{"name":"t","client":{}}],"agents":[{"name":"a","tools":["t"]}]}`,
		"agents:\n  - name: support\n    toolz: [x]\n",
		"tools:\n  - {name: t, http: {url: 'http://${HOST}/x', headers: {A: '${NOPE}'}}}\n" + agentsOnly,
		"mcp_servers:\n  - {name: m, url: 'http://m', tools: [x]}\nagents:\n  - {name: a, tools: [m], approval: [m__x]}\n",
		"agents:\n  - {name: a, allow: {claims: {level: 3, groups: x}}, max_steps: 5, temperature: 0.5}\n",
		"x: &a [*a]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, testEnv)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
		}
	})
}
