package engine

import (
	"fmt"
	"testing"
)

// A userTable finds every key it was given with its latest fields and
// flags, across the growth of its index, and nothing else.
func TestUserTable(t *testing.T) {
	tab := newUserTable(2)
	defer tab.free()
	const n = 50_000
	for i := range n {
		if _, err := tab.put(fmt.Sprintf("user%d@example.com", i), uint8(i%4), fmt.Sprintf("id-%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Putting a key again replaces its record.
	for i := 0; i < n; i += 7 {
		if _, err := tab.put(fmt.Sprintf("user%d@example.com", i), 0, "moved", fmt.Sprintf("mgr-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if tab.len() != n {
		t.Fatalf("len %d, want %d", tab.len(), n)
	}
	for i := range n {
		k := tab.find(fmt.Sprintf("user%d@example.com", i))
		if k < 0 {
			t.Fatalf("user%d not found", i)
		}
		id, mgr, flag := fmt.Sprintf("id-%d", i), "", uint8(i%4)
		if i%7 == 0 {
			id, mgr, flag = "moved", fmt.Sprintf("mgr-%d", i), 0
		}
		if got := tab.field(k, 0); got != id {
			t.Fatalf("user%d: id %q, want %q", i, got, id)
		}
		if got := tab.field(k, 1); got != mgr {
			t.Fatalf("user%d: manager %q, want %q", i, got, mgr)
		}
		if got := tab.flag(k); got != flag {
			t.Fatalf("user%d: flags %d, want %d", i, got, flag)
		}
	}
	for _, k := range []string{"", "user50000@example.com", "USER1@example.com", "user1@example.co"} {
		if tab.has(k) {
			t.Errorf("has %q", k)
		}
	}
	var none *userTable
	if none.has("x") || none.len() != 0 {
		t.Fatal("a nil table holds something")
	}
}
