package convo

import "context"

// WaitTurns waits until no turn runs or ctx ends.
func (s *Service) WaitTurns(ctx context.Context) error { return s.waitTurns(ctx) }

// KickDeleted takes conversation id's hub, drops it as a delete of the
// conversation does, then kicks it, and reports whether a runner started
// on it.
func (s *Service) KickDeleted(id string) bool {
	h := s.acquire(id)
	defer s.release(h)
	s.hubDeleted(h)
	return s.startRunner(h, nil)
}
