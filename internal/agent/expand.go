package agent

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
)

// varRE matches ${NAME}. Only this form is expanded: a bare $ is common in
// URLs and commands and stays as it is.
var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandVars replaces each ${NAME} in s with getenv(NAME); a name that
// getenv maps to "" is an error naming it.
func expandVars(s string, getenv func(string) string) (string, error) {
	var missing string
	out := varRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v := getenv(name)
		if v == "" && missing == "" {
			missing = name
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("${%s} is not set", missing)
	}
	return out, nil
}

// expand applies expandVars to every URL, header value, command word and
// env value.
func (c *Config) expand(getenv func(string) string) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	one := func(label string, s *string) error {
		v, err := expandVars(*s, getenv)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		*s = v
		return nil
	}
	headers := func(label string, h map[string]string) error {
		for _, k := range slices.Sorted(maps.Keys(h)) {
			v := h[k]
			if err := one(label+": headers: "+k, &v); err != nil {
				return err
			}
			h[k] = v
		}
		return nil
	}
	for i := range c.Tools {
		t := &c.Tools[i]
		if t.HTTP == nil {
			continue
		}
		label := entryLabel("tools", i, t.Name)
		if err := one(label+": http: url", &t.HTTP.URL); err != nil {
			return err
		}
		if err := headers(label+": http", t.HTTP.Headers); err != nil {
			return err
		}
	}
	for i := range c.MCPServers {
		s := &c.MCPServers[i]
		label := entryLabel("mcp_servers", i, s.Name)
		if err := one(label+": url", &s.URL); err != nil {
			return err
		}
		for j := range s.Command {
			if err := one(fmt.Sprintf("%s: command[%d]", label, j), &s.Command[j]); err != nil {
				return err
			}
		}
		if err := headers(label, s.Headers); err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(s.Env)) {
			v := s.Env[k]
			if err := one(label+": env: "+k, &v); err != nil {
				return err
			}
			s.Env[k] = v
		}
	}
	return nil
}
