package jetlog

// head is where a conversation's record is and which of its events it
// holds: its position in the stream, and its first and last seq.
type head struct {
	pos, seq, last uint64
}

// headOfRecord is rec's head.
func headOfRecord(rec *Record) head { return head{pos: rec.Pos, seq: rec.Seq, last: rec.Last()} }
