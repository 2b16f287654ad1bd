package dnsname

import (
	"strings"
	"testing"
)

// Names are persisted (a restarted controller finds its Jobs and imports
// by them): Join gives exactly what the two shortening rules it replaced
// gave, for every length.
func TestJoinKeepsTheNamesMadeBefore(t *testing.T) {
	// The Job builder's rule: cut the prefix, keep the suffix.
	bounded := func(prefix, suffix string) string {
		room := MaxLength - len(suffix) - 1
		if len(prefix) > room {
			prefix = strings.TrimRight(prefix[:room], "-.")
		}
		return prefix + "-" + suffix
	}
	// The schedule's rule: a prefix and a hash in n characters, or the
	// hash alone.
	shorten := func(name, h string, n int) string {
		prefix := strings.TrimRight(name[:n-len(h)-1], "-.")
		if prefix == "" {
			return h
		}
		return prefix + "-" + h
	}
	const hash = "0a1b2c3d"
	// Kubernetes names start with a letter or digit.
	for _, unit := range []string{"a", "hr-", "x.", "a--", "b-."} {
		for n := 1; n <= 300; n++ {
			name := strings.Repeat(unit, n)
			if got, want := Join(name, hash, MaxLength), bounded(name, hash); got != want {
				t.Fatalf("Join(%q) = %q, want %q", name, got, want)
			}
			for _, room := range []int{20, 40, MaxLength} {
				if len(name) <= room {
					continue
				}
				if got, want := Join(name, hash, room), shorten(name, hash, room); got != want || len(got) > room {
					t.Fatalf("Join(%q, %d) = %q, want %q", name, room, got, want)
				}
			}
		}
	}
}
