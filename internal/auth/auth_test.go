package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/protocol"
)

func TestNone(t *testing.T) {
	c, err := None("local")(httptest.NewRequest("GET", "/v1/ws?token=whatever", nil))
	if err != nil || c.User != "local" || c.Claims != nil {
		t.Fatalf("None = %+v, %v; want local without claims", c, err)
	}
	if got := UserFrom(context.Background()); got != "" {
		t.Fatalf("UserFrom(empty context) = %q", got)
	}
}

func TestMiddleware(t *testing.T) {
	tests := []struct {
		name     string
		userFn   func(*http.Request) (Caller, error)
		wantUser string // the user the handler sees, or else
		wantMsg  string // the 401 message
	}{
		{"user", None("alice"), "alice", ""},
		{"unauthorized", func(*http.Request) (Caller, error) {
			return Caller{}, unauthorized(errNoToken)
		}, "", "missing bearer token"},
		{"unexpected error stays private", func(*http.Request) (Caller, error) {
			return Caller{}, errors.New("db at /var/secret is down")
		}, "", "authentication failed"},
		{"other codes are not passed on", func(*http.Request) (Caller, error) {
			return Caller{}, protocol.Errorf(protocol.CodeInternal, "key server unreachable")
		}, "", "authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := Middleware(tt.userFn)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = UserFrom(r.Context())
				w.WriteHeader(http.StatusNoContent)
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/conversations", nil))
			if tt.wantMsg == "" {
				if rec.Code != http.StatusNoContent || seen != tt.wantUser {
					t.Fatalf("status %d, user %q; want 204 and %q", rec.Code, seen, tt.wantUser)
				}
				return
			}
			if seen != "" {
				t.Fatalf("the handler ran for user %q", seen)
			}
			wantRejection(t, rec.Result(), tt.wantMsg)
		})
	}
}

// wantRejection checks a 401 answer: its header and its exact JSON body.
func wantRejection(t *testing.T, resp *http.Response, msg string) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	if got := resp.Header.Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("WWW-Authenticate %q, want Bearer", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "unauthorized", "message": msg}})
	if strings.TrimSpace(string(body)) != string(want) {
		t.Errorf("body %s, want %s", body, want)
	}
}

// TestMiddlewareWithJWT drives the JWT hook through Middleware over a real
// HTTP server.
func TestMiddlewareWithJWT(t *testing.T) {
	j, err := NewJWT(t.Context(), JWTOptions{Secret: testSecret, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Middleware(j.Caller)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, UserFrom(r.Context()))
	})))
	t.Cleanup(srv.Close)
	expired := sign(t, jwt.SigningMethodHS256, testSecret, "", with(func(c jwt.MapClaims) { c["exp"] = 1 }))
	tests := []struct {
		name, query, header string
		want                string // the body, or else
		wantMsg             string // the 401 message
	}{
		{name: "header", header: "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor("dave")), want: "dave"},
		{name: "query", query: "?token=" + sign(t, jwt.SigningMethodHS256, testSecret, "", claimsFor("erin")), want: "erin"},
		{name: "missing", wantMsg: "missing bearer token"},
		{name: "expired", header: "Bearer " + expired, wantMsg: "token expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/conversations"+tt.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if tt.wantMsg != "" {
				wantRejection(t, resp, tt.wantMsg)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != tt.want {
				t.Fatalf("status %d body %q, want 200 %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}
