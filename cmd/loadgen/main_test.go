package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/loadtest"
)

// TestMain lets the test binary serve as the load generator's client
// process, as main does.
func TestMain(m *testing.M) {
	if child, err := loadtest.RunChild(os.Stdin, os.Stdout); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // in stdout
		wantErr string // in the error, "" for none
	}{
		{
			name: "baseline with flags and environment twins",
			// -min-sends and -chunk-delay keep the bare pipeline's
			// streams step short (by default it sends 200 turns at 50
			// chunks/s, for up to half of -duration: 10 s here).
			args: []string{"-scenario", "baseline", "-commits", "5", "-paced-commits", "3", "-c", "3", "-turns", "2",
				"-min-sends", "6", "-chunk-delay", "2ms", "-dir", t.TempDir()},
			env:  map[string]string{"LOADGEN_BEDROCK_CALLS": "1", "LOADGEN_DURATION": "20s", "LOADGEN_COMMITS": "bad, but the flag wins"},
			want: "commits/s) | 5 |",
		},
		{name: "unknown scenario", args: []string{"-scenario", "nope"}, wantErr: `unknown scenario "nope"`},
		{name: "bad list", args: []string{"-c", "10,x"}, wantErr: `"x" is not a positive integer`},
		{name: "bad environment twin", env: map[string]string{"LOADGEN_TURNS": "many"}, wantErr: "LOADGEN_TURNS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			err := run(context.Background(), tc.args, getenv, &stdout, &stderr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("run: %v\n%s", err, stderr.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("run: %v, want an error with %q", err, tc.wantErr)
			}
			if !strings.Contains(stdout.String(), tc.want) {
				t.Errorf("stdout lacks %q:\n%s", tc.want, stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &stdout, &stderr); err != flag.ErrHelp {
		t.Fatalf("run -h = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "-chunk-delay") {
		t.Errorf("the help lacks -chunk-delay:\n%s", stderr.String())
	}
}
