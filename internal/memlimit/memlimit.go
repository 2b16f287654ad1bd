// Package memlimit paces the Go runtime's garbage collector by the
// container's memory limit.
package memlimit

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

// GCPercent is the collector's pace under a limit: 100 (collect when the
// heap has doubled its live data) for every 128 MiB of the limit, from
// 100 to 400. A worker's live heap is a few tens of MiB (the engine's
// sets live outside it), so at 100 under the default 512 MiB it collected
// every few MiB of garbage and cost an import as much CPU as its writes;
// under a small limit the heap must stay small whatever the CPU.
func GCPercent(limit int64) int {
	return int(min(max(limit/(128<<20), 1), 4) * 100)
}

// FromContainer calls Set with the container's memory limit (cgroup v2,
// then v1), unless GOMEMLIMIT is set or the container has no limit.
func FromContainer() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		limit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || limit <= 0 || limit > 1<<50 {
			return // "max", or v1's "no limit"
		}
		Set(limit)
		return
	}
}

// Set gives the runtime a soft memory limit of 3/4 of limit, less what is
// held outside the Go heap (see Outside), and the collector the pace
// GCPercent gives it unless GOGC is set. Without a soft limit the heap
// grows to twice the live data before a collection, and a worker under a
// small limit is killed for garbage it had not yet collected. The
// quarter left is for what the runtime does not count: thread stacks, the
// page cache.
func Set(limit int64) {
	mu.Lock()
	defer mu.Unlock()
	soft = limit / 4 * 3
	apply()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent(limit))
	}
}

var (
	mu      sync.Mutex
	soft    int64 // the soft limit Set gave; 0 before
	outside int64 // bytes held outside the Go heap
)

// Outside tells the soft limit that n more bytes are held outside the Go
// heap (fewer when n is negative): memory mapped by the engine for its
// snapshot and sets. The runtime does not count them, so without this a
// worker whose sets are large lets its heap grow to the whole soft limit
// beside them, and the container is killed for the sum.
func Outside(n int64) {
	mu.Lock()
	defer mu.Unlock()
	outside += n
	apply()
}

// apply sets the runtime's limit: the soft limit less what is held
// outside, but never below a quarter of it, so that a heap that has to
// grow still can, collected often rather than never.
func apply() {
	if soft > 0 {
		debug.SetMemoryLimit(max(soft-outside, soft/4))
	}
}

// Limit is the runtime's memory limit now.
func Limit() int64 { return debug.SetMemoryLimit(-1) }
