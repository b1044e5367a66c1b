package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss is this process's resident set size in bytes (VmRSS of
// /proc/self/status), or 0 where that file does not exist.
func rss() uint64 { return procNumber("/proc/self/status", "VmRSS:") << 10 }

// storageWritten is the bytes this process has caused to be written to
// storage (write_bytes of /proc/self/io: file writes, not socket ones), or
// 0 where that file does not exist.
func storageWritten() uint64 { return procNumber("/proc/self/io", "write_bytes:") }

// procNumber is the number that follows key at the start of a line of the
// file at path, or 0.
func procNumber(path, key string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte(key)); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.ParseUint(string(f[0]), 10, 64)
			return n
		}
	}
	return 0
}

// memory is a snapshot of this process's memory.
type memory struct {
	rss uint64
	// goBytes is the Go heap and goroutine stacks in use (HeapInuse +
	// StackInuse): what the Go runtime holds for live objects.
	goBytes, heap, stack uint64
	// goroutines is the number of goroutines.
	goroutines int
}

func readMemory() memory {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{rss: rss(), goBytes: ms.HeapInuse + ms.StackInuse, heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// settledMemory collects garbage, returns freed memory to the OS and then
// reads the memory, so that two readings differ by what is live.
func settledMemory() memory {
	runtime.GC()
	debug.FreeOSMemory()
	return readMemory()
}

// peakSampler records the highest RSS and Go heap seen while it runs.
type peakSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak memory
}

func startPeakSampler(every time.Duration) *peakSampler {
	p := &peakSampler{stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			p.sample()
			select {
			case <-t.C:
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

func (p *peakSampler) sample() {
	m := readMemory()
	p.peak.rss = max(p.peak.rss, m.rss)
	p.peak.goBytes = max(p.peak.goBytes, m.goBytes)
	p.peak.heap = max(p.peak.heap, m.heap)
	p.peak.stack = max(p.peak.stack, m.stack)
}

// done stops the sampler and returns the peaks.
func (p *peakSampler) done() memory {
	close(p.stop)
	p.wg.Wait()
	p.sample()
	return p.peak
}

// raiseFDLimit raises this process's soft limit on open files to the hard
// limit and returns the new soft limit.
func raiseFDLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("loadtest: getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("loadtest: setrlimit: %w", err)
		}
	}
	return lim.Cur, nil
}

// machineBusy is the CPU time all processes of the machine have used
// (the busy fields of the first line of /proc/stat, in USER_HZ = 100
// ticks per second), or 0 where that file does not exist.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0
	}
	var ticks uint64
	// user nice system idle iowait irq softirq steal: all but idle and
	// iowait.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, _ := strconv.ParseUint(string(v), 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// loadAverage is the first three fields of /proc/loadavg, or "n/a".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := bytes.Fields(data)
	if len(f) < 3 {
		return "n/a"
	}
	return string(bytes.Join(f[:3], []byte(" ")))
}

// gcWork is what the Go runtime counts of this process's allocation and
// garbage collection.
type gcWork struct {
	// allocated is the bytes of heap allocated; collections the
	// collection cycles completed.
	allocated, collections uint64
}

// readGCWork reads the runtime's cumulative counts.
func readGCWork() gcWork {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	var w gcWork
	if s[0].Value.Kind() == metrics.KindUint64 {
		w.allocated = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		w.collections = s[1].Value.Uint64()
	}
	return w
}

// since is the work done from before to w.
func (w gcWork) since(before gcWork) gcWork {
	return gcWork{allocated: w.allocated - before.allocated, collections: w.collections - before.collections}
}
