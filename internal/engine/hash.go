package engine

import (
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// hashValues is the fingerprint of an attribute's values, normalised so
// that what a directory returns compares equal to what a row maps to:
// empty values are dropped (an empty value means "no value") and several
// values are compared as a set. 0 means "no values".
func hashValues(vals []string) uint64 {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	switch n {
	case 0:
		return 0
	case 1:
		for _, v := range vals {
			if v != "" {
				return nonZero(xxhash.Sum64String(v))
			}
		}
	}
	sorted := make([]string, 0, n)
	for _, v := range vals {
		if v != "" {
			sorted = append(sorted, v)
		}
	}
	slices.Sort(sorted)
	d := xxhash.New()
	for _, v := range sorted {
		_, _ = d.WriteString(v)
		_, _ = d.Write([]byte{0})
	}
	return nonZero(d.Sum64())
}

// identityHash is the fingerprint by which the run tells the identities
// of two lines apart: in a directory that folds identities (case,
// blanks), the spellings of one identity have one.
func (r *run) identityHash(identity string) uint64 {
	if r.fold != nil {
		identity = r.fold(identity)
	}
	return hashIdentity(identity)
}

// idKey is the key of identity in the run's maps of identities: folded
// in a directory that folds identities.
func (r *run) idKey(identity string) string {
	if r.fold != nil {
		return r.fold(identity)
	}
	return strings.Clone(identity)
}

// hashIdentity is the 64-bit fingerprint of an identity.
func hashIdentity(identity string) uint64 { return nonZero(xxhash.Sum64String(identity)) }

func nonZero(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}
