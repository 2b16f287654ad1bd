package main

import (
	"strings"
	"testing"
)

// The in-process executor runs every tenant inside the manager: it is
// refused unless the manager watches one namespace or the cluster is
// declared single-tenant.
func TestInProcessNeedsOneTenant(t *testing.T) {
	for _, args := range [][]string{
		{"--executor=inprocess"},
		{"--executor=inprocess", "--watch-namespaces=hr,it"},
	} {
		if err := runManager(args); err == nil || !strings.Contains(err.Error(), "--single-tenant") {
			t.Errorf("%v: %v, want a refusal naming --single-tenant", args, err)
		}
	}
}
