package main

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// setMemoryLimit gives the Go runtime a soft memory limit of 3/4 of the
// container's (cgroup v2, then v1) unless GOMEMLIMIT is set: without one
// the heap grows to twice the live data before a collection, and a
// worker under a small limit is killed for garbage it had not yet
// collected. The quarter left is for what the runtime does not count:
// thread stacks, the engine's sets outside the heap, the page cache.
func setMemoryLimit() {
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
		debug.SetMemoryLimit(limit / 4 * 3)
		return
	}
}

// peakMemoryMiB is the process's peak resident memory (VmHWM), or -1.
func peakMemoryMiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb >> 10
		}
	}
	return -1
}
