// Package flagenv gives every flag of a FlagSet an environment twin:
// PREFIX_ and the flag's name in upper case with '-' as '_', so that
// -send-queue of the gateway is GATEWAY_SEND_QUEUE. A flag given on the
// command line wins over its twin.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// Name is the environment twin of the flag name under prefix.
func Name(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse notes each flag's twin in its usage text, parses args, refuses
// positional arguments, then sets every flag not given in args from its
// twin in getenv when that is set.
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) error {
	fs.VisitAll(func(f *flag.Flag) { f.Usage += fmt.Sprintf(" (env %s)", Name(prefix, f.Name)) })
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := Name(prefix, f.Name)
		v := getenv(name)
		if err != nil || given[f.Name] || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%s=%q: %w", name, v, serr)
		}
	})
	return err
}
