package limits

import (
	"sync"

	"github.com/chatgateway/gateway/protocol"
)

// Slots counts held slots (open connections) in total and per key, safe
// for concurrent use.
type Slots struct {
	max, perKey int
	mu          sync.Mutex
	total       int
	byKey       map[string]int
}

// NewSlots returns Slots allowing max slots in all and perKey for one key;
// a bound that is not positive is no bound.
func NewSlots(max, perKey int) *Slots {
	return &Slots{max: max, perKey: perKey, byKey: make(map[string]int)}
}

// Acquire takes a slot for key, or returns a busy *protocol.Error when a
// bound is reached. Each successful Acquire needs one Release.
func (s *Slots) Acquire(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 && s.total >= s.max {
		return protocol.Errorf(protocol.CodeBusy, "too many connections to the gateway, try again later")
	}
	if s.perKey > 0 && s.byKey[key] >= s.perKey {
		return protocol.Errorf(protocol.CodeBusy, "too many connections for this user")
	}
	s.total++
	s.byKey[key]++
	return nil
}

// Release gives back a slot of key.
func (s *Slots) Release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.byKey[key]--; s.byKey[key] <= 0 {
		delete(s.byKey, key) // a key without slots holds no memory
	}
}
