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
	first  uint64   // the key of frames[0]
	frames [][]byte // nil: not kept
	size   int      // bytes of the frames kept
}

// get returns the frame of tail key g, or nil if it is not kept.
func (f *tailFrames) get(g uint64) []byte {
	if g < f.first || g-f.first >= uint64(len(f.frames)) {
		return nil
	}
	return f.frames[g-f.first]
}

// apply adds a committed batch's frames, which it stored from tail key
// from on, forgets those of the keys it moved and those below below,
// and lets the oldest go while the frames kept pass tailFramesMax.
func (f *tailFrames) apply(from uint64, added [][]byte, moved []uint64, below uint64) {
	if len(f.frames) == 0 {
		f.first = from
	}
	for _, frame := range added {
		f.frames = append(f.frames, frame)
		f.size += len(frame)
	}
	for _, g := range moved {
		if frame := f.get(g); frame != nil {
			f.size -= len(frame)
			f.frames[g-f.first] = nil
		}
	}
	for len(f.frames) > 0 && (f.first < below || f.frames[0] == nil || f.size > tailFramesMax) {
		f.size -= len(f.frames[0])
		f.frames[0] = nil
		f.frames = f.frames[1:]
		f.first++
	}
}
