package main

import (
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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

// TestRunLogsClient sends requests through a "proxy" on loopback and
// reads the real program's request log: with -trusted-proxies
// 127.0.0.0/8 each line names the client that X-Forwarded-For gives by
// the rule the per-IP limits follow (a forged entry left of the proxy's
// is not believed, a whole IPv6 address is kept, an entry that is no
// address leaves the proxy as the client); without it, every line names
// the TCP peer. No line carries the header's text. The per-IP limits are
// off: -trusted-proxies still names the client in the log.
func TestRunLogsClient(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("a", 512<<10)
	tests := []struct {
		trusted bool
		path    string // the request's own, which its log line names
		xff     string
		client  string
	}{
		{true, "/v1/trusted", "203.0.113.1", "203.0.113.1"},
		{true, "/v1/trusted-forged", "6.6.6.6, 203.0.113.2", "203.0.113.2"},
		{true, "/v1/trusted-ipv6", "2001:db8:1:2::9", "2001:db8:1:2::9"},
		{true, "/v1/trusted-huge", huge, "127.0.0.1"},
		{false, "/v1/untrusted", "203.0.113.1", "127.0.0.1"},
		{false, "/v1/untrusted-huge", huge, "127.0.0.1"},
	}
	for _, trusted := range []bool{true, false} {
		args := []string{"-addr", "127.0.0.1:0", "-upgrade-rate", "0", "-auth-fail-rate", "0"}
		if trusted {
			args = append(args, "-trusted-proxies", "127.0.0.0/8")
		}
		g := startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db")}, args...)
		logged := map[string]<-chan struct{}{}
		for _, tt := range tests {
			if tt.trusted != trusted {
				continue
			}
			logged[tt.path] = g.log.watch(regexp.MustCompile(`^.{0,300}msg="http request" method=GET path=` +
				regexp.QuoteMeta(tt.path) + ` client=` + regexp.QuoteMeta(tt.client) + ` .{0,200}$`))
			r, err := http.NewRequest(http.MethodGet, g.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("X-Forwarded-For", tt.xff)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		// Stop waits for every request's handler, and so for its line.
		g.Stop(t)
		for path, ch := range logged {
			select {
			case <-ch:
			default:
				t.Errorf("GET %s: no request log line of a few hundred bytes naming its client", path)
			}
		}
	}
}

// TestRunConnectionLogNamesClient opens a WebSocket through a "proxy" on
// loopback: every log line of the connection names the client that
// X-Forwarded-For gives with -trusted-proxies, so that a connection's
// lines (a slow consumer's close, say) can be traced to its sender.
func TestRunConnectionLogNamesClient(t *testing.T) {
	t.Parallel()
	g := startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db")},
		"-addr", "127.0.0.1:0", "-log-level", "debug", "-trusted-proxies", "127.0.0.0/8")
	served := g.log.watch(regexp.MustCompile(`msg="connection open" `))
	opened := g.log.watch(regexp.MustCompile(`msg="connection open" conn=\d+ client=203\.0\.113\.9 `))
	closed := g.log.watch(regexp.MustCompile(`msg="connection closed" conn=\d+ client=203\.0\.113\.9 `))
	if a := conntest.Upgrade(t, g.URL, "", http.Header{"X-Forwarded-For": {"203.0.113.9"}}); a.Status != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %d %+v", a.Status, a.Error)
	}
	// The upgrade's answer comes before the connection is served: a
	// gateway stopped in between closes it unserved, with no line.
	<-served
	// Stop closes the connection and waits for it to end, and for the
	// whole log to be read.
	g.Stop(t)
	for name, ch := range map[string]<-chan struct{}{"open": opened, "closed": closed} {
		select {
		case <-ch:
		default:
			t.Errorf("no connection %s line naming the client", name)
		}
	}
}
