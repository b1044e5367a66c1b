package jetlog

// Cut closes the store's connection to NATS, as a crash of its gateway or
// a network partition would look to JetStream.
func (s *Store) Cut() { s.nc.Close() }
