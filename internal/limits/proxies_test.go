package limits_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/limits"
)

// TestClientKey checks the rightmost-untrusted rule: behind the trusted
// proxies 10.0.0.0/8 and 2001:db8:ffff::/48, the client is the rightmost
// X-Forwarded-For entry outside them; a peer outside them, or a header
// that runs out or breaks first, leaves the peer as the client.
func TestClientKey(t *testing.T) {
	t.Parallel()
	const proxies = "10.0.0.0/8, 2001:db8:ffff::/48"
	tests := []struct {
		name    string
		proxies string
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies trusted", "", "10.0.0.1:1000", []string{"203.0.113.5"}, "10.0.0.1"},
		{"spoofing from an untrusted peer", proxies, "192.0.2.9:1000", []string{"203.0.113.5"}, "192.0.2.9"},
		{"untrusted peer naming a proxy", proxies, "192.0.2.9:1000", []string{"10.0.0.2"}, "192.0.2.9"},
		{"one proxy", proxies, "10.0.0.1:1000", []string{"203.0.113.5"}, "203.0.113.5"},
		{"forged left entries ignored", proxies, "10.0.0.1:1000", []string{"6.6.6.6, 7.7.7.7,203.0.113.5"}, "203.0.113.5"},
		{"chain of proxies", proxies, "10.0.0.1:1000", []string{"6.6.6.6, 203.0.113.5, 10.0.0.3, 10.9.9.9"}, "203.0.113.5"},
		{"headers are one list", proxies, "10.0.0.1:1000", []string{"6.6.6.6, 203.0.113.5", "10.0.0.3"}, "203.0.113.5"},
		{"last header wins", proxies, "10.0.0.1:1000", []string{"203.0.113.5", "198.51.100.1"}, "198.51.100.1"},
		{"no header", proxies, "10.0.0.1:1000", nil, "10.0.0.1"},
		{"empty header", proxies, "10.0.0.1:1000", []string{""}, "10.0.0.1"},
		{"only proxies", proxies, "10.0.0.1:1000", []string{"10.0.0.2, 2001:db8:ffff::2"}, "10.0.0.1"},
		{"malformed rightmost", proxies, "10.0.0.1:1000", []string{"203.0.113.5, unknown"}, "10.0.0.1"},
		{"malformed after proxies", proxies, "10.0.0.1:1000", []string{"203.0.113.5, 300.1.1.1, 10.0.0.2"}, "10.0.0.1"},
		{"trailing comma", proxies, "10.0.0.1:1000", []string{"203.0.113.5,"}, "10.0.0.1"},
		{"malformed forged entry not read", proxies, "10.0.0.1:1000", []string{"<script>, 203.0.113.5"}, "203.0.113.5"},
		{"entry with a port", proxies, "10.0.0.1:1000", []string{"203.0.113.5:4711"}, "203.0.113.5"},
		{"IPv6 client by /64", proxies, "10.0.0.1:1000", []string{"2001:db8:1:2:aaaa:bbbb:cccc:dddd"}, "2001:db8:1:2::/64"},
		{"IPv6 client with a port", proxies, "10.0.0.1:1000", []string{"[2001:db8:1:2::9]:80"}, "2001:db8:1:2::/64"},
		{"IPv6 proxy", proxies, "[2001:db8:ffff::1]:443", []string{"203.0.113.5, 2001:db8:ffff::7"}, "203.0.113.5"},
		{"IPv6 peer untrusted keyed by /64", proxies, "[2001:db8:5:6::1]:443", []string{"203.0.113.5"}, "2001:db8:5:6::/64"},
		{"IPv4-mapped proxy", proxies, "[::ffff:10.0.0.1]:1000", []string{"::ffff:203.0.113.5"}, "203.0.113.5"},
		{"a single address trusted", "10.0.0.7", "10.0.0.7:1000", []string{"203.0.113.5"}, "203.0.113.5"},
		{"its neighbour not", "10.0.0.7", "10.0.0.8:1000", []string{"203.0.113.5"}, "10.0.0.8"},
		{"peer not an address", proxies, "pipe", []string{"203.0.113.5"}, "pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := limits.ParseTrustedProxies(tt.proxies)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/v1/ws", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := p.ClientKey(r); got != tt.want {
				t.Errorf("ClientKey(peer %s, X-Forwarded-For %q) = %q, want %q", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	for _, list := range []string{"", " , ", "10.0.0.0/8", "10.0.0.0/8, ,2001:db8::/32", "192.0.2.1, 2001:db8::1", "0.0.0.0/0"} {
		if _, err := limits.ParseTrustedProxies(list); err != nil {
			t.Errorf("ParseTrustedProxies(%q): %v", list, err)
		}
	}
	tests := []struct{ list, wantErr string }{
		{"10.0.0.0/33", `"10.0.0.0/33"`},
		{"10.0.0.0/8, proxy.example.com", `"proxy.example.com": want a CIDR`},
		{"10.0.0.1/8", "did you mean 10.0.0.0/8?"},
		{"2001:db8::1/32", "did you mean 2001:db8::/32?"},
		{"::ffff:10.0.0.0/104", "write it in IPv4 form"},
		{"::ffff:10.0.0.1", "write it in IPv4 form"},
		{"fe80::1%eth0", `"fe80::1%eth0": want a CIDR`},
		{"10.0.0.0/8 192.168.0.0/16", `"10.0.0.0/8 192.168.0.0/16"`},
	}
	for _, tt := range tests {
		p, err := limits.ParseTrustedProxies(tt.list)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || p != nil {
			t.Errorf("ParseTrustedProxies(%q) = %v, %v; want an error mentioning %s", tt.list, p, err, tt.wantErr)
		}
	}
}

// TestClient checks the address the request log names: the same client
// as ClientKey's, but a whole IPv6 address rather than its /64, and
// never more than Echo keeps of a peer that is not an address.
func TestClient(t *testing.T) {
	t.Parallel()
	p, err := limits.ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("p", 4096)
	tests := []struct {
		name, peer, xff, want string
	}{
		{"proxy trusted", "10.0.0.1:1000", "6.6.6.6, 203.0.113.5", "203.0.113.5"},
		{"peer untrusted", "192.0.2.9:1000", "203.0.113.5", "192.0.2.9"},
		{"IPv6 client whole", "10.0.0.1:1000", "[2001:db8:1:2::9]:80", "2001:db8:1:2::9"},
		{"IPv4-mapped peer", "[::ffff:192.0.2.9]:1000", "", "192.0.2.9"},
		{"zone dropped", "[fe80::1%eth0]:1000", "", "fe80::1"},
		{"peer not an address", "pipe", "203.0.113.5", "pipe"},
		{"long peer not an address", long, "", limits.Echo(long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := p.Client(r); got != tt.want {
				t.Errorf("Client(peer %.40s, X-Forwarded-For %q) = %.300q, want %.300q", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}
