package flagenv

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "default", want: "d"},
		{name: "from the environment", env: map[string]string{"APP_SOME_FLAG": "e"}, want: "e"},
		{name: "flag wins", args: []string{"-some-flag", "f"}, env: map[string]string{"APP_SOME_FLAG": "e"}, want: "f"},
		{name: "bad twin", env: map[string]string{"APP_COUNT": "x"}, wantErr: `APP_COUNT="x"`},
		{name: "positional", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("app", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			got := fs.String("some-flag", "d", "a flag")
			fs.Int("count", 0, "a number")
			err := Parse(fs, "APP", tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || *got != tt.want {
				t.Fatalf("got %q, %v; want %q", *got, err, tt.want)
			}
			if u := fs.Lookup("some-flag").Usage; !strings.HasSuffix(u, "(env APP_SOME_FLAG)") {
				t.Errorf("usage %q does not name the twin", u)
			}
		})
	}
}
