// Package natstest runs NATS servers with JetStream inside a test process:
// one server, or a cluster of several on loopback ports, each of which a
// test can stop and start again on the same store. Nothing needs to be
// installed: the server is the nats-server module itself.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Server is one embedded NATS server with JetStream, listening on
// loopback ports, storing in a directory of the test's.
type Server struct {
	t    testing.TB
	opts server.Options // the ports are the ones it listens on, once started
	srv  *server.Server
	log  *fatalLog
}

// Start runs a single JetStream server that fsyncs every write (as the
// documented one-server setup does) and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, func(*server.Options) {})
}

// StartWith is Start with the server's options changed by set (a limit,
// the accounts).
func StartWith(t testing.TB, set func(*server.Options)) *Server {
	t.Helper()
	s := &Server{t: t, opts: baseOptions(t, "s1")}
	s.opts.SyncAlways = true
	set(&s.opts)
	t.Cleanup(s.Stop) // after TempDir's, so that it runs before
	s.Restart()
	return s
}

// baseOptions are the options every test server shares. The server
// chooses its own port when it first starts: a port picked beforehand
// could be taken, before the server binds it, as the source port of one
// of the many loopback connections other tests open meanwhile.
func baseOptions(t testing.TB, name string) server.Options {
	return server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		// Bounded, so that several servers fit on a shared test machine.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		// Stop hands its leaderships over and closes its clients within
		// about a second and a half, instead of the default two minutes.
		LameDuckDuration: 500 * time.Millisecond,
		// Negative to pass the server's check that the grace period is
		// shorter than the duration; the server uses its absolute value.
		LameDuckGracePeriod: -time.Millisecond,
	}
}

// URL is the client URL of the server.
func (s *Server) URL() string {
	return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
}

// Name is the server's name, as JetStream reports where it places
// streams and consumers.
func (s *Server) Name() string { return s.opts.ServerName }

// Running reports whether the server runs now.
func (s *Server) Running() bool { return s.srv != nil }

// Stop shuts the server down (its store stays for Restart), handing its
// JetStream leaderships to the other servers of a cluster first, as a
// rolling restart does: otherwise the rest of the cluster waits for
// election timeouts of several seconds. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	if s.opts.Cluster.Port != 0 {
		s.srv.LameDuckShutdown()
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart starts the server (again) with its store, and waits until it
// listens: the first time on ports the server chooses, later on the same
// ones, so that clients find it where it was. It fails the test with the
// server's error if the server cannot start, for instance because another
// connection took one of its ports while it was stopped. (It does not
// try again: tried, a retry after a failed start kept finding the route
// port in use, probably by a listener the failed server left behind.)
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("natstest: server %s: %v", s.opts.ServerName, err)
	}
	waitFor(s.t, "server "+s.opts.ServerName+" to listen", s.listening)
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	if s.opts.Cluster.Port != 0 {
		s.opts.Cluster.Port = s.srv.ClusterAddr().Port
	}
}

// launch runs a server on s.opts. Start returns once it listens for
// clients (or failed to); it listens for routes in the background.
func (s *Server) launch() error {
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("new server: %w", err)
	}
	s.log = &fatalLog{}
	srv.SetLogger(s.log, false, false)
	srv.Start()
	s.srv = srv
	return nil
}

// listening reports whether the server listens on every port it was
// given, or the error it failed with.
func (s *Server) listening() (bool, error) {
	if err := s.log.err(); err != nil {
		return false, err
	}
	return s.srv.Addr() != nil && (s.opts.Cluster.Port == 0 || s.srv.ClusterAddr() != nil), nil
}

// Cluster is several embedded servers routed to each other, forming one
// JetStream cluster.
type Cluster struct {
	Servers []*Server
}

// StartCluster runs n servers on loopback ports as one JetStream cluster,
// waits until it has a meta leader, and stops it when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for i := range n {
		opts := baseOptions(t, fmt.Sprintf("s%d", i+1))
		opts.Cluster = server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: server.RANDOM_PORT}
		c.Servers = append(c.Servers, &Server{t: t, opts: opts})
	}
	t.Cleanup(c.Stop) // after TempDir's, so that it runs before
	// Servers start one after another, each routed to those already
	// running, which then tell each other about it. JetStream wants the
	// first to have a route too: one to nowhere, which it keeps trying in
	// the background.
	routes := []*url.URL{{Scheme: "nats", Host: "127.0.0.1:0"}}
	for i, s := range c.Servers {
		s.opts.Routes = routes
		s.Restart()
		if i == 0 {
			routes = nil
		}
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", s.opts.Cluster.Port)})
	}
	// A restarted server routes to every other itself, rather than wait
	// for them to reconnect to it.
	for _, s := range c.Servers {
		s.opts.Routes = routes
	}
	c.WaitLeader(t)
	return c
}

// URLs is the comma-separated client URLs of every server, as -nats takes
// them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	return strings.Join(urls, ",")
}

// WaitLeader waits until a running server is the cluster's JetStream meta
// leader and knows every running server as a peer, so that replicated
// streams can be placed.
func (c *Cluster) WaitLeader(t testing.TB) {
	t.Helper()
	running := 0
	for _, s := range c.Servers {
		if s.srv != nil {
			running++
		}
	}
	waitFor(t, "a JetStream meta leader", func() (bool, error) {
		for _, s := range c.Servers {
			if s.srv != nil && s.srv.JetStreamIsLeader() && len(s.srv.JetStreamClusterPeers()) >= running {
				return true, nil
			}
		}
		return false, nil
	})
}

// Stop shuts every server down.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		s.Stop()
	}
}

// StartWithCreds runs a single JetStream server, like Start, that lets in
// only the one user of its trusted operator's account, and returns it
// with the path of that user's credentials file (its JWT and NKey seed),
// as a NATS operator would hand it out. The account limits a stream to
// AccountConsumers consumers, as a hosted NATS account may.
func StartWithCreds(t testing.TB) (*Server, string) {
	t.Helper()
	operator := newKeys(t, nkeys.CreateOperator)
	system, account := newKeys(t, nkeys.CreateAccount), newKeys(t, nkeys.CreateAccount)
	user := newKeys(t, nkeys.CreateUser)

	oc := jwt.NewOperatorClaims(operator.pub)
	oc.SystemAccount = system.pub
	sc := jwt.NewAccountClaims(system.pub)
	ac := jwt.NewAccountClaims(account.pub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: AccountConsumers}
	uc := jwt.NewUserClaims(user.pub)
	resolver := &server.MemAccResolver{}
	for _, a := range []*jwt.AccountClaims{sc, ac} {
		if err := resolver.Store(a.Subject, encode(t, a, operator.kp)); err != nil {
			t.Fatalf("natstest: %v", err)
		}
	}
	seed, err := user.kp.Seed()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	creds, err := jwt.FormatUserConfig(encode(t, uc, account.kp), seed)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatalf("natstest: %v", err)
	}

	s := StartWith(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{oc}
		o.SystemAccount = system.pub
		o.AccountResolver = resolver
	})
	return s, path
}

// AccountConsumers is the consumer limit of StartWithCreds's account.
const AccountConsumers = 500

// keys is an NKey pair and its public key.
type keys struct {
	kp  nkeys.KeyPair
	pub string
}

func newKeys(t testing.TB, create func() (nkeys.KeyPair, error)) keys {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return keys{kp: kp, pub: pub}
}

// encode signs claims with kp.
func encode(t testing.TB, claims jwt.Claims, kp nkeys.KeyPair) string {
	t.Helper()
	s, err := claims.Encode(kp)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return s
}

// Proxy forwards TCP connections to a server and can stop forwarding
// without closing them, as a network partition does: what either side
// sends meanwhile is held, and arrives once the proxy heals.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	gate  chan struct{} // closed while bytes flow
	conns []net.Conn
}

// NewProxy forwards connections to s, and stops when the test ends.
func NewProxy(t testing.TB, s *Server) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: fmt.Sprintf("127.0.0.1:%d", s.opts.Port), gate: make(chan struct{})}
	close(p.gate)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL is the client URL of the proxy.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

// Cut stops forwarding, in both directions, on every connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // cut already
	}
}

// Heal forwards again, what was held first.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

// pipe copies from src to dst, holding each read while the proxy is cut.
func (p *Proxy) pipe(src, dst net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Heal()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
