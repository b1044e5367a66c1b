package boltlog

// tailFramesMax bounds the bytes of frames tailFrames keeps.
const tailFramesMax = 8 << 20

// tailFrames keeps the frames of the tail's newest entries as the commit
// loop wrote them, so that moving a turn's events out of the tail reads
// them here rather than seeking each in the tail (a seek per event, the
// costliest part of a move). It holds the entries from first to the
// tail's end; those no longer needed (moved, or below the tail's cut)
// are nil or gone, and when the frames held pass tailFramesMax the
// oldest go: a move seeks what is not here. Frames are never changed
// once stored (the hubs get the same slices), so keeping them is safe.
type tailFrames struct {
	first uint64 // the key of the oldest entry held
	// ring holds the n entries from first on, the oldest at ring[head];
	// its length is a power of two. A ring rather than a slice whose
	// front is cut: appending to that copied it whole every so often.
	ring    [][]byte // nil: not kept
	head, n int
	size    int // bytes of the frames kept
}

// at returns the index in ring of the entry i after the oldest.
func (f *tailFrames) at(i uint64) int { return (f.head + int(i)) & (len(f.ring) - 1) }

// get returns the frame of tail key g, or nil if it is not kept.
func (f *tailFrames) get(g uint64) []byte {
	if g < f.first || g-f.first >= uint64(f.n) {
		return nil
	}
	return f.ring[f.at(g-f.first)]
}

// apply adds a committed batch's frames, which it stored from tail key
// from on, forgets those of the keys it moved and those below below,
// and lets the oldest go while the frames kept pass tailFramesMax.
func (f *tailFrames) apply(from uint64, added [][]byte, moved []uint64, below uint64) {
	if f.n == 0 {
		f.first = from
	}
	if f.n+len(added) > len(f.ring) {
		f.grow(f.n + len(added))
	}
	for _, frame := range added {
		f.ring[f.at(uint64(f.n))] = frame
		f.n++
		f.size += len(frame)
	}
	for _, g := range moved {
		if frame := f.get(g); frame != nil {
			f.size -= len(frame)
			f.ring[f.at(g-f.first)] = nil
		}
	}
	for f.n > 0 && (f.first < below || f.ring[f.head] == nil || f.size > tailFramesMax) {
		f.size -= len(f.ring[f.head])
		f.ring[f.head] = nil
		f.head = f.at(1)
		f.n--
		f.first++
	}
}

// grow makes the ring hold at least n entries.
func (f *tailFrames) grow(n int) {
	size := max(len(f.ring), 64)
	for size < n {
		size *= 2
	}
	ring := make([][]byte, size)
	for i := range f.n {
		ring[i] = f.ring[f.at(uint64(i))]
	}
	f.ring, f.head = ring, 0
}
