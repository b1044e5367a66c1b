package loadtest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// recorder collects latency samples from many goroutines.
type recorder struct {
	mu sync.Mutex
	d  []time.Duration
}

func (r *recorder) add(d ...time.Duration) {
	r.mu.Lock()
	r.d = append(r.d, d...)
	r.mu.Unlock()
}

func (r *recorder) summary() summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summarize(r.d)
}

// summary is the distribution of a set of latencies.
type summary struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return summary{n: len(s), p50: quantile(s, 0.50), p99: quantile(s, 0.99), max: s[len(s)-1]}
}

// quantile is the nearest-rank q-quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// cells renders p50, p99 and max, or "n/a" when there were no samples.
func (s summary) cells() []string {
	if s.n == 0 {
		return []string{"n/a", "n/a", "n/a"}
	}
	return []string{ms(s.p50), ms(s.p99), ms(s.max)}
}

// ms formats d in milliseconds with enough digits for sub-millisecond
// figures.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.3f ms", v)
	case v < 1000:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// mib formats a byte count in MiB.
func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// kib formats a byte count in KiB.
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }

// ratio formats a/b, or "n/a" when b is zero.
func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// histogramSummary estimates the p50, p99 and max of what Prometheus
// histogram name observed between two gatherings (see metrics.Gather), as
// histogram_quantile does: linearly within the bucket that holds the
// quantile. Its max is the upper bound of the highest bucket used.
func histogramSummary(before, after map[string]float64, name string) summary {
	type bucket struct{ le, count float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range after {
		le, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
		if err == nil {
			bs = append(bs, bucket{bound, v - before[k]})
		}
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	// The count includes what is beyond the last bucket: Gather reports
	// no +Inf bucket, the text exposition does.
	total := after[name+"_count"] - before[name+"_count"]
	if len(bs) == 0 || total <= 0 {
		return summary{}
	}
	at := func(q float64) time.Duration {
		rank := q * total
		lower, below := 0.0, 0.0
		for _, b := range bs {
			if b.count >= rank {
				if math.IsInf(b.le, 1) {
					return seconds(lower)
				}
				return seconds(lower + (b.le-lower)*(rank-below)/(b.count-below))
			}
			lower, below = b.le, b.count
		}
		return seconds(lower)
	}
	s := summary{n: int(total), p50: at(0.5), p99: at(0.99)}
	for _, b := range bs {
		if !math.IsInf(b.le, 1) {
			s.max = seconds(b.le)
		}
		if b.count >= total {
			break
		}
	}
	return s
}

// seconds is s seconds as a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
