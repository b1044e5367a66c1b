package bedrock_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
)

func TestEndpoint(t *testing.T) {
	reply := fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"redirected"}})
	for _, tc := range []struct {
		name string
		// setup returns the options and the fake expected to answer.
		setup func(t *testing.T) (bedrock.Options, *fakebedrock.Server)
	}{
		{"AWS_ENDPOINT_URL_BEDROCK_RUNTIME", func(t *testing.T) (bedrock.Options, *fakebedrock.Server) {
			srv := startFake(t, reply)
			t.Setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", srv.URL)
			return bedrock.Options{}, srv
		}},
		{"AWS_ENDPOINT_URL", func(t *testing.T) (bedrock.Options, *fakebedrock.Server) {
			srv := startFake(t, reply)
			t.Setenv("AWS_ENDPOINT_URL", srv.URL)
			return bedrock.Options{}, srv
		}},
		{"Endpoint option wins over the environment", func(t *testing.T) (bedrock.Options, *fakebedrock.Server) {
			other := startFake(t, reply)
			t.Setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", other.URL)
			srv := startFake(t, reply)
			return bedrock.Options{Endpoint: srv.URL}, srv
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t)
			opts, srv := tc.setup(t)
			opts.Logger = testLogger(t)
			c, err := bedrock.New(context.Background(), opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			chunks, _, err := stream(t, c, ask("hi"))
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if text(chunks) != "redirected" || srv.Calls() != 1 {
				t.Errorf("text %q, %d calls at the expected fake; want its reply and 1 call", text(chunks), srv.Calls())
			}
		})
	}
}

func TestRegion(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	isolateAWS(t)
	t.Setenv("AWS_REGION", "")
	if _, err := bedrock.New(context.Background(), bedrock.Options{Endpoint: srv.URL}); !errors.Is(err, bedrock.ErrNoRegion) {
		t.Fatalf("New without a region: err = %v, want ErrNoRegion", err)
	} else if !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("error %q does not say to set AWS_REGION", err)
	}

	// The Region option fills in (and overrides) the chain's region.
	c, err := bedrock.New(context.Background(), bedrock.Options{Endpoint: srv.URL, Region: "eu-west-3", Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New with Region: %v", err)
	}
	if c.Region() != "eu-west-3" {
		t.Errorf("Region() = %q, want eu-west-3", c.Region())
	}
	if _, _, err := stream(t, c, ask("hi")); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if auth := srv.Requests()[0].Header.Get("Authorization"); !strings.Contains(auth, "/eu-west-3/bedrock/aws4_request") {
		t.Errorf("Authorization = %q, want an eu-west-3 bedrock scope", auth)
	}
}

func TestNoCredentials(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err := bedrock.New(context.Background(), bedrock.Options{})
	if !errors.Is(err, bedrock.ErrNoCredentials) {
		t.Fatalf("New without credentials: err = %v, want ErrNoCredentials", err)
	}
	for _, w := range []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
}

func TestUnknownProfile(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_PROFILE", "no-such-profile")
	if _, err := bedrock.New(context.Background(), bedrock.Options{}); err == nil || !strings.Contains(err.Error(), "AWS_PROFILE") {
		t.Fatalf("New with an unknown profile: err = %v, want one naming AWS_PROFILE", err)
	}
}
