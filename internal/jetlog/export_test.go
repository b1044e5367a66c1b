package jetlog

import "github.com/nats-io/nats.go"

// Cut closes the store's connection to NATS, as a crash of its gateway or
// a network partition would look to JetStream.
func (s *Store) Cut() { s.nc.Close() }

// Conn is the store's connection to NATS.
func (s *Store) Conn() *nats.Conn { return s.nc }
