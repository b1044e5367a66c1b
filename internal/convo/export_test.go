package convo

import "context"

// Subscribed reports whether sub is a live subscriber of conversation id.
func (s *Service) Subscribed(id string, sub Subscriber) bool {
	s.mu.Lock()
	h := s.hubs[id]
	s.mu.Unlock()
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.subs[sub]
	return ok
}

// WaitTurns waits until no turn runs or ctx ends.
func (s *Service) WaitTurns(ctx context.Context) error { return s.waitTurns(ctx) }
