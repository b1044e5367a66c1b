package agent

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// mcpSeparator joins an MCP server's name and its tool's name into the
// name the model sees.
const mcpSeparator = "__"

// maxNameLen is the longest tool name Bedrock takes.
const maxNameLen = 64

// modelName is the name the model sees for tool of MCP server: the two
// joined by "__", every character outside [a-zA-Z0-9_-] replaced by "_",
// and, when longer than 64 characters, cut and ended with a hash of the
// whole so that two long names stay apart.
func modelName(server, tool string) string {
	full := server + mcpSeparator + tool
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, full)
	if len(name) <= maxNameLen {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(full))
	suffix := fmt.Sprintf("_%08x", h.Sum32())
	return name[:maxNameLen-len(suffix)] + suffix
}

// mcpNames are the names the model sees for the tools of MCP server, in
// their order, none of them in taken, all added to it. Names that
// collide once made to fit get suffixes (_2, _3, …) in the server's
// order, but a tool whose name fits as it is keeps it: so
// "<server>__<tool>" names the same tool whether read as the server's
// name for it or as the name the model sees.
func mcpNames(server string, tools []mcpTool, taken map[string]bool) []string {
	names := make([]string, len(tools))
	for _, asIs := range []bool{true, false} {
		for i, t := range tools {
			if (t.model == server+mcpSeparator+t.name) == asIs {
				names[i] = uniqueName(t.model, taken)
				taken[names[i]] = true
			}
		}
	}
	return names
}

// uniqueName is name, or name with a numeric suffix if taken already.
func uniqueName(name string, taken map[string]bool) string {
	for i := 2; taken[name]; i++ {
		s := fmt.Sprintf("_%d", i)
		base := name
		if len(base)+len(s) > maxNameLen {
			base = base[:maxNameLen-len(s)]
		}
		if !taken[base+s] {
			name = base + s
		}
	}
	return name
}
