package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

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
