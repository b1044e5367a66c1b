package jetlog

import "github.com/nats-io/nats.go"

// Cut closes the store's connection to NATS, as a crash of its gateway or
// a network partition would look to JetStream.
func (s *Store) Cut() { s.nc.Close() }

// Conn is the store's connection to NATS.
func (s *Store) Conn() *nats.Conn { return s.nc }

// NodeTaken is closed when another gateway took the store's node name.
func (s *Store) NodeTaken() <-chan struct{} { return s.claim.taken }

// ClaimKey is node's claim key in the leases bucket.
func ClaimKey(node string) string { return claimKey(node) }

// LeaseKey is conversation id's turn lease key in the leases bucket.
func LeaseKey(id string) string { return "l." + token(id) }

// FollowBytes is the most a follower of l buffers.
func (l *Log) FollowBytes() int { return l.followBytes() }

// FollowHeartbeat is how long a follower's consumer may stay silent.
const FollowHeartbeat = followHeartbeat

// Server names the server that holds the follower's consumer now.
func (f *Follower) Server() string { return f.cons.CachedInfo().Cluster.Leader }
