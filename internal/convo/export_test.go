package convo

import "context"

// WaitTurns waits until no turn runs or ctx ends.
func (s *Service) WaitTurns(ctx context.Context) error { return s.waitTurns(ctx) }
