package web_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn/conntest"
)

// TestRefusedTokenIsExplained opens the page of a gateway with -auth jwt
// with a token it refuses. A browser cannot see the 401 of a WebSocket
// upgrade, so the page would say "Reconnecting…" for ever; it must say
// instead that the sign-in is invalid or expired, and stop retrying.
func TestRefusedTokenIsExplained(t *testing.T) {
	secret := []byte(strings.Repeat("s", auth.MinSecretBytes))
	j, err := auth.NewJWT(context.Background(), auth.JWTOptions{Secret: secret, Logger: conntest.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key []byte, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	g := startGateway(t, newStepModel(), gatewayConfig{user: j.Caller})
	for _, tc := range []struct {
		name, token, says string
	}{
		{"expired", sign(secret, jwt.MapClaims{"sub": "alice", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}), "token expired"},
		{"forged", sign([]byte(strings.Repeat("x", auth.MinSecretBytes)), jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}), "signature invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTab(t, tc.name)
			tb.do(chromedp.Navigate(g.url + "/#token=" + tc.token))
			tb.waitFor("the page to say the sign-in is refused",
				`document.querySelector('[data-testid=status]').dataset.state === 'refused' && `+
					`!document.getElementById('notice').hidden && `+
					`document.getElementById('notice-text').textContent.startsWith('Your sign-in is invalid or has expired')`)
			notice := tb.text(`document.getElementById('notice-text').textContent`)
			if !strings.Contains(notice, tc.says) {
				t.Errorf("notice %q does not say %q", notice, tc.says)
			}
			if strings.Contains(notice, tc.token) {
				t.Errorf("the notice shows the token: %q", notice)
			}
			// Stopped for good: a message typed now is refused at once,
			// not queued for a connection that cannot come.
			tb.send("hello")
			tb.waitFor("the message back in the composer", `document.querySelector('[data-testid=composer]').value === 'hello'`)
		})
	}
}
