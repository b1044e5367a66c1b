package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// How a JWKS is kept fresh.
const (
	// refreshInterval is the time between scheduled reloads.
	refreshInterval = 10 * time.Minute
	// refetchMinInterval bounds the reloads that unknown kids cause, so
	// that tokens naming made-up keys cannot flood the key server.
	refetchMinInterval = time.Minute
	// fetchTimeout bounds one download of a JWKS URL.
	fetchTimeout = 10 * time.Second
	// maxJWKSBytes bounds a downloaded JWKS.
	maxJWKSBytes = 1 << 20
)

// keySource holds the keys of a JWKS file or URL and reloads them.
// Verification reads the current set through an atomic pointer, so a slow
// reload never delays tokens whose key is already known.
type keySource struct {
	load func(context.Context) ([]byte, error)
	log  *slog.Logger
	keys atomic.Pointer[map[string]publicKey]

	mu sync.Mutex // serialises reloads
	// lastRefetch is when an unknown kid last caused a reload; guarded by mu.
	lastRefetch time.Time
}

// newKeySource loads the JWKS at location (a file path, or an http or
// https URL) and keeps reloading it until ctx ends.
func newKeySource(ctx context.Context, location string, client *http.Client, log *slog.Logger) (*keySource, error) {
	s := &keySource{log: log}
	name := location
	if strings.HasPrefix(location, "https://") || strings.HasPrefix(location, "http://") {
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("auth: jwks url: %w", err)
		}
		name = u.Redacted()
		if u.Scheme == "http" {
			log.Warn("the JWKS is fetched over plain http: whoever controls the path can forge tokens", "jwks", name)
		}
		if client == nil {
			client = http.DefaultClient
		}
		s.load = httpLoader(location, client)
	} else {
		s.load = func(context.Context) ([]byte, error) { return os.ReadFile(location) }
	}
	if err := s.reload(ctx, slog.LevelWarn); err != nil {
		return nil, fmt.Errorf("auth: load jwks %s: %w", name, err)
	}
	go s.refreshLoop(ctx)
	return s, nil
}

// key returns the key named kid if it verifies alg. An unknown kid causes
// a reload (see refetch) before it is refused.
func (s *keySource) key(ctx context.Context, kid, alg string) (any, error) {
	pk, ok := (*s.keys.Load())[kid]
	if !ok {
		if pk, ok = s.refetch(ctx, kid); !ok {
			return nil, fmt.Errorf("%w: kid %q", errUnknownKey, kid)
		}
	}
	if pk.alg != alg {
		return nil, fmt.Errorf("%w: kid %q is for %s", errKeyAlgMismatch, kid, pk.alg)
	}
	return pk.key, nil
}

// refetch reloads the set because a token names kid, which it lacks — the
// issuer may have rotated its keys — unless the last such reload was less
// than refetchMinInterval ago. It reports kid's key after the reload.
func (s *keySource) refetch(ctx context.Context, kid string) (publicKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Another caller may have reloaded while this one waited.
	if pk, ok := (*s.keys.Load())[kid]; ok {
		return pk, true
	}
	now := time.Now()
	if !s.lastRefetch.IsZero() && now.Sub(s.lastRefetch) < refetchMinInterval {
		return publicKey{}, false
	}
	s.lastRefetch = now
	// The reload serves every later token too, so the caller going away
	// must not cut it short.
	if err := s.reload(context.WithoutCancel(ctx), slog.LevelDebug); err != nil {
		s.log.Warn("jwks reload for an unknown key failed; keeping the previous keys", "kid", kid, "err", err)
		return publicKey{}, false
	}
	pk, ok := (*s.keys.Load())[kid]
	s.log.Info("jwks reloaded for an unknown key", "kid", kid, "found", ok)
	return pk, ok
}

// refreshLoop reloads the set every refreshInterval until ctx ends. A
// failed reload keeps the previous keys.
func (s *keySource) refreshLoop(ctx context.Context) {
	tick := time.NewTicker(refreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		err := s.reload(ctx, slog.LevelDebug)
		s.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("jwks refresh failed; keeping the previous keys", "err", err)
		}
	}
}

// reload loads and parses the set and, if it holds a usable key, makes it
// current. Keys it leaves out are logged at skippedLevel: loudly at start,
// quietly on every refresh after.
func (s *keySource) reload(ctx context.Context, skippedLevel slog.Level) error {
	data, err := s.load(ctx)
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(data)
	for _, e := range skipped {
		s.log.Log(ctx, skippedLevel, "jwks key skipped", "err", e)
	}
	if err != nil {
		return err
	}
	s.keys.Store(&keys)
	return nil
}

// httpLoader returns a loader that downloads the JWKS at u.
func httpLoader(u string, client *http.Client) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("auth: jwks request: %w", err)
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("auth: fetch jwks: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("auth: fetch jwks: status %s", resp.Status)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
		if err != nil {
			return nil, fmt.Errorf("auth: read jwks: %w", err)
		}
		if len(data) > maxJWKSBytes {
			return nil, errors.New("auth: jwks larger than 1 MiB")
		}
		return data, nil
	}
}
