package main

import (
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
)

// TestRunTrustedProxies runs the gateway behind a "proxy" on loopback,
// with a budget of one upgrade, or of one failed authentication, per
// client IP. With -trusted-proxies 127.0.0.0/8 the two clients that
// X-Forwarded-For names apart get a budget each, and the first client
// cannot pass for the second by forging an entry left of the proxy's;
// without it they share the proxy's one budget.
func TestRunTrustedProxies(t *testing.T) {
	t.Parallel()
	first := http.Header{"X-Forwarded-For": {"203.0.113.1"}}
	forged := http.Header{"X-Forwarded-For": {"203.0.113.2", "6.6.6.6, 203.0.113.1"}}
	second := http.Header{"X-Forwarded-For": {"203.0.113.2"}}
	dials := []http.Header{first, forged, second}
	upgrades := []string{"-upgrade-rate", "0.001", "-upgrade-burst", "1"}
	failures := []string{"-auth-fail-rate", "0.001", "-auth-fail-burst", "1"}
	trusted := []string{"-trusted-proxies", "127.0.0.0/8"}
	tests := []struct {
		name   string
		args   []string
		auth   bool // -auth jwt, and each dial has a bad token
		status []int
	}{
		{"upgrades, proxy trusted", slices.Concat(upgrades, trusted), false, []int{101, 429, 101}},
		{"upgrades, proxy not trusted", upgrades, false, []int{101, 429, 429}},
		{"auth failures, proxy trusted", slices.Concat(failures, trusted), true, []int{401, 429, 401}},
		{"auth failures, proxy not trusted", failures, true, []int{401, 429, 429}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db")}
			query := ""
			if tt.auth {
				env["GATEWAY_AUTH"], env[secretEnv] = "jwt", string(conntest.Secret)
				query = "token=bad"
			}
			g := startRun(t, env, append([]string{"-addr", "127.0.0.1:0"}, tt.args...)...)
			for i, h := range dials {
				if a := conntest.Upgrade(t, g.URL, query, h); a.Status != tt.status[i] {
					t.Errorf("dial %d, X-Forwarded-For %q: answered %d %+v, want %d", i, h.Values("X-Forwarded-For"), a.Status, a.Error, tt.status[i])
				}
			}
		})
	}
}
