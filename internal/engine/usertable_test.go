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

// A memberList gives back each member as added, and finds it by identity
// across the growth of its index.
func TestMemberList(t *testing.T) {
	l := &memberList{}
	defer l.free()
	const n = 20_000
	for i := range n {
		m := member{line: int64(i + 2), identity: fmt.Sprintf("u%d", i), manager: fmt.Sprintf("u%d", i/10)}
		for g := range i % 3 {
			m.groups = append(m.groups, int32(g*100+i%7))
		}
		if err := l.add(m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		k := l.find(fmt.Sprintf("u%d", i))
		if k != i {
			t.Fatalf("u%d found at %d", i, k)
		}
		m := l.at(k)
		if m.line != int64(i+2) || l.line(k) != m.line || m.identity != fmt.Sprintf("u%d", i) || l.identity(k) != m.identity ||
			m.manager != fmt.Sprintf("u%d", i/10) || l.manager(k) != m.manager || len(m.groups) != i%3 {
			t.Fatalf("member %d: %+v", i, m)
		}
		for g, v := range m.groups {
			if v != int32(g*100+i%7) {
				t.Fatalf("member %d: groups %v", i, m.groups)
			}
		}
	}
	if l.has("u20000") || l.has("") || l.has("U1") {
		t.Fatal("found a member never added")
	}
}
