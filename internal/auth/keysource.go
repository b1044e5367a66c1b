package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/chatgateway/gateway/internal/readlimit"
)

// How a JWKS is kept fresh.
const (
	// refreshInterval is the time between scheduled reloads.
	refreshInterval = 10 * time.Minute
	// refetchMinInterval bounds the reloads that unknown kids cause, so
	// that tokens naming made-up keys cannot flood the key server.
	refetchMinInterval = time.Minute
	// fetchTimeout bounds one download of a JWKS, and how long a token
	// with an unknown kid may wait for the rate limit to allow a reload.
	fetchTimeout = 10 * time.Second
	// maxJWKSBytes bounds a downloaded JWKS.
	maxJWKSBytes = 1 << 20
)

// keySource finds the key that verifies a token in a JWKS, which
// github.com/MicahParks/keyfunc and jwkset download and keep fresh: every
// refreshInterval, and at once when a token names a kid the set lacks (at
// most once per refetchMinInterval). Our key policy (see checkKey) is
// applied to every key they hand out.
type keySource struct {
	kf keyfunc.Keyfunc
}

// newKeySource loads the JWKS at location (a file path, or an http or
// https URL) and keeps reloading it until ctx ends. It fails when the set
// cannot be loaded or holds no key that checkJWK accepts; keys it does not
// accept are logged. client (default http.DefaultClient) makes the
// downloads.
func newKeySource(ctx context.Context, location string, client *http.Client, log *slog.Logger) (_ *keySource, err error) {
	u, name, transport, err := jwksURL(location, client, log)
	if err != nil {
		return nil, err
	}
	// A set that loads but is refused must not leave jwkset's refresh
	// goroutine behind.
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	c := &http.Client{}
	if client != nil {
		c2 := *client
		c = &c2
	}
	c.Transport = limitBody{transport}
	if c.Timeout == 0 {
		c.Timeout = fetchTimeout
	}
	known, err := jwkset.NewStorageFromHTTP(u, jwkset.HTTPClientStorageOptions{
		Client:          c,
		Ctx:             ctx,
		HTTPTimeout:     fetchTimeout,
		RefreshInterval: refreshInterval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				log.Warn("jwks refresh failed; keeping the previous keys", "jwks", name, "err", err)
			}
		},
		// jwkset's own validation refuses the whole set for a key with a
		// use or key_ops it does not know; checkKey and keyfunc decide
		// which keys verify tokens instead. Key material that does not
		// parse (not base64, a point off its curve) still fails the set.
		ValidateOptions: jwkset.JWKValidateOptions{SkipAll: true},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: load jwks %s: %w", name, err)
	}
	if err := checkLoaded(ctx, known, log); err != nil {
		return nil, fmt.Errorf("auth: load jwks %s: %w", name, err)
	}
	refreshing, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{u: known},
		RateLimitWaitMax:  fetchTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(refetchMinInterval), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("auth: jwks client: %w", err)
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:          ctx,
		Storage:      &oneRefresh{Storage: refreshing, known: known},
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: jwks keyfunc: %w", err)
	}
	return &keySource{kf: kf}, nil
}

// key returns the key that verifies t, whose algorithm the parser has
// already limited to RS256 or ES256.
func (s *keySource) key(ctx context.Context, t *jwt.Token) (any, error) {
	// A reload for an unknown kid serves every later token too, so the
	// caller going away must not cut it short.
	found, err := s.kf.KeyfuncCtx(context.WithoutCancel(ctx))(t)
	switch {
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return nil, fmt.Errorf("%w: %w", errUnknownKey, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errKeyNotAccepted, err)
	}
	return pickKey(t.Method.Alg(), found)
}

// checkLoaded logs the keys of a freshly loaded set that verify nothing,
// and fails if no key is left.
func checkLoaded(ctx context.Context, st jwkset.Storage, log *slog.Logger) error {
	all, err := st.KeyReadAll(ctx)
	if err != nil {
		return err
	}
	usable := 0
	for _, j := range all {
		if err := checkJWK(j); err != nil {
			log.Warn("jwks key not used", "kid", j.Marshal().KID, "err", err)
			continue
		}
		usable++
	}
	if usable == 0 {
		return fmt.Errorf("jwks holds no usable key (%d keys)", len(all))
	}
	return nil
}

// oneRefresh lets one reload for unknown kids run at a time. jwkset
// reloads on a kid it lacks, but tokens that arrive together after a key
// rotation would each ask its rate limiter, and all but the first be
// refused: here they wait for the first's reload and find the new key in
// it. Reads of known kids never wait.
type oneRefresh struct {
	jwkset.Storage                // reloads on an unknown kid
	known          jwkset.Storage // the keys loaded so far, read without reloading
	mu             sync.Mutex     // held for a read that may reload
}

// KeyRead returns the key named kid, reloading the set (see oneRefresh)
// when it lacks kid. Every failure to find kid, including a reload that
// the rate limit refused, wraps jwkset.ErrKeyNotFound.
func (s *oneRefresh) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	if j, err := s.known.KeyRead(ctx, kid); !errors.Is(err, jwkset.ErrKeyNotFound) {
		return j, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.Storage.KeyRead(ctx, kid)
	if err != nil && !errors.Is(err, jwkset.ErrKeyNotFound) {
		err = fmt.Errorf("%w %q: %w", jwkset.ErrKeyNotFound, kid, err)
	}
	return j, err
}

// jwksURL returns the URL that jwkset loads location from, a name of it
// fit for logs, and the transport that fetches it. jwkset reads only URLs:
// a file is served to it as a file:// URL by fileTransport, so that it is
// reloaded like a remote set.
func jwksURL(location string, client *http.Client, log *slog.Logger) (u, name string, rt http.RoundTripper, err error) {
	if !strings.HasPrefix(location, "https://") && !strings.HasPrefix(location, "http://") {
		path, err := filepath.Abs(location)
		if err != nil {
			return "", "", nil, fmt.Errorf("auth: jwks file: %w", err)
		}
		return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String(), location, fileTransport{path}, nil
	}
	parsed, err := url.Parse(location)
	if err != nil {
		return "", "", nil, fmt.Errorf("auth: jwks url: %w", err)
	}
	name = parsed.Redacted()
	if parsed.Scheme == "http" {
		log.Warn("the JWKS is fetched over plain http: whoever controls the path can forge tokens", "jwks", name)
	}
	rt = http.DefaultTransport
	if client != nil && client.Transport != nil {
		rt = client.Transport
	}
	return location, name, rt, nil
}

// fileTransport answers every request with the file at path.
type fileTransport struct{ path string }

// RoundTrip reads the file; a missing file is an error, not a 404, so
// that NewJWT names it.
func (t fileTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Request: r,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   io.NopCloser(bytes.NewReader(data)), ContentLength: int64(len(data)),
	}, nil
}

// limitBody fails the read of an answer beyond maxJWKSBytes: jwkset
// decodes whatever the body holds.
type limitBody struct{ base http.RoundTripper }

// RoundTrip makes the request with the base transport and limits the
// answer's body.
func (t limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		resp.Body = readlimit.ReadCloser(resp.Body, maxJWKSBytes, errJWKSTooLarge)
	}
	return resp, err
}
