package natstest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

var _ server.Logger = (*fatalLog)(nil)

// pollInterval is how often waitFor looks again.
const pollInterval = 20 * time.Millisecond

// reportMargin is how long before go test's -timeout ends the whole test
// binary waitFor gives up: time enough to say what it waited for and to
// stop the servers.
const reportMargin = 10 * time.Second

// waitFor polls done until it reports true. It fails the test when done
// reports an error, or when the test is about to run out of time; it has
// no limit of its own, since a loaded machine can take long to start a
// server, and a server that cannot start says so.
func waitFor(t testing.TB, what string, done func() (bool, error)) {
	t.Helper()
	var giveUp time.Time
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			giveUp = deadline.Add(-reportMargin)
		}
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := done()
		switch {
		case err != nil:
			t.Fatalf("natstest: waiting for %s: %v", what, err)
		case ok:
			return
		case !giveUp.IsZero() && time.Now().After(giveUp):
			t.Fatalf("natstest: still waiting for %s as the test's time runs out", what)
		}
		<-tick.C
	}
}

// fatalLog is a server's logger. It keeps the first fatal error, such as
// a port it cannot listen on, which the server otherwise only logs before
// carrying on without that listener, and drops everything else.
type fatalLog struct {
	mu    sync.Mutex
	fatal error
}

func (l *fatalLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal == nil {
		l.fatal = fmt.Errorf(format, v...)
	}
}

// err is the first fatal error the server logged, if any.
func (l *fatalLog) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}
