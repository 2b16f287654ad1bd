package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

func importAt(name, version string) v1alpha1.UserImport {
	return v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: version}}
}

// The cache decides a directory's queue only once it shows the last phase
// written there, and the import reconciled as it was read.
func TestPhaseWritesTrustTheCacheOnlyPastTheLastWrite(t *testing.T) {
	var p phaseWrites
	const dir = "tenant/corp"
	b := importAt("b", "90")
	list := func(aVersion string) []v1alpha1.UserImport {
		l := []v1alpha1.UserImport{b}
		if aVersion != "" {
			l = append(l, importAt("a", aVersion))
		}
		return l
	}
	steps := []struct {
		what  string
		do    func()
		cache []v1alpha1.UserImport
		want  bool
	}{
		{"the queue never read afresh", nil, list("80"), false},
		{"read afresh with a at 80", func() { p.readAfresh(dir, list("80")) }, list("80"), true},
		{"b read past the cache", nil, []v1alpha1.UserImport{importAt("b", "89")}, false},
		{"a's write under way", func() { p.writing(dir, "a") }, list("100"), false},
		{"a's write of unknown outcome, listed afresh at 100", func() { p.readAfresh(dir, list("100")) }, list("80"), false},
		{"the cache at a's version", nil, list("100"), true},
		{"a written at 120", func() { p.wrote(dir, "a", "120") }, list("100"), false},
		{"the cache past it", nil, list("130"), true},
		{"once seen, the write is forgotten", nil, list("100"), true},
		{"a written at 140, then deleted: b, listed at 90, is the newest", func() { p.wrote(dir, "a", "140"); p.readAfresh(dir, list("")) }, list("100"), true},
		{"a at 150, b at 160: the cache must show b at 160", func() { p.readAfresh(dir, []v1alpha1.UserImport{importAt("a", "150"), importAt("b", "160")}) }, list("150"), false},
		{"nothing left in the directory", func() { p.readAfresh(dir, nil) }, list("150"), true},
		{"another directory's write", func() { p.wrote("tenant/other", "z", "999") }, list("100"), true},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		if got := p.cached(dir, &b, s.cache); got != s.want {
			t.Fatalf("%s: cached %v, want %v", s.what, got, s.want)
		}
	}
	if len(p.last) != 1 {
		t.Fatalf("%d directories remembered, want only the other's: %v", len(p.last), p.last)
	}
}
