// Package dnsname fits generated names into a DNS label (63 characters):
// the one rule by which the Job, worker and schedule names are shortened.
// What makes a shortened name unique (a hash) is the caller's: those
// names are persisted, and each keeps its own.
package dnsname

import "strings"

// MaxLength is the length of a DNS label: names end up in labels.
const MaxLength = 63

// Join is "<prefix>-<suffix>" in at most n characters: the prefix is cut
// to fit, without a trailing dash or dot; a prefix cut to nothing leaves
// the suffix alone.
func Join(prefix, suffix string, n int) string {
	if room := n - len(suffix) - 1; len(prefix) > room {
		prefix = strings.TrimRight(prefix[:max(room, 0)], "-.")
	}
	if prefix == "" {
		return suffix
	}
	return prefix + "-" + suffix
}
