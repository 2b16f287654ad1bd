// Package leakcheck helps tests prove that what a provider returns under
// failure quotes none of a file's values: row values are personal data,
// and errors reach status, Events and logs.
package leakcheck

import (
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/internal/directory"
)

// NoValues fails the test when text quotes one of values, as it is or
// URL-escaped (a filter in a URL writes @ as %40).
func NoValues(t testing.TB, what, text string, values []string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(text, v) || strings.Contains(text, strings.ReplaceAll(v, "@", "%40")) {
			t.Fatalf("%s quotes the value %q: %s", what, v, text)
		}
	}
}

// FirstError is err, or the first error among the results of an Apply.
func FirstError(res []directory.Result, err error) error {
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// EachFails runs each call, in a subtest of its name, with the fault in
// force (fault makes it and returns what undoes it): each must fail, with
// an error that quotes none of values.
func EachFails(t *testing.T, fault func() (undo func()), calls map[string]func() error, values []string) {
	t.Helper()
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			undo := fault()
			defer undo()
			err := call()
			if err == nil {
				t.Fatal("no error although the fault was in force")
			}
			NoValues(t, name+" error", err.Error(), values)
		})
	}
}
