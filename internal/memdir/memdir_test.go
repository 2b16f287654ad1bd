package memdir

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/userimport/user-import-operator/internal/directory"
)

func opts() directory.Options {
	return directory.Options{IdentityAttribute: "userName", ManagedOnly: true, MarkerAttribute: "mark", MarkerValue: "uio"}
}

func TestApplyUpsertsAndScopes(t *testing.T) {
	ctx := context.Background()
	d := New(opts())
	d.Put(directory.User{Identity: "outsider", Active: true, Attributes: directory.Attributes{"mail": {"o@x"}}})
	res, err := d.Apply(ctx, []directory.Change{
		{Op: directory.OpCreate, Identity: "a", Attributes: directory.Attributes{"mail": {"a@x"}, "mark": {"uio"}}},
		{Op: directory.OpCreate, Identity: "a", Attributes: directory.Attributes{"mail": {"a2@x"}, "mark": {"uio"}}},
		{Op: directory.OpUpdate, Identity: "missing", Attributes: directory.Attributes{"mail": {"m@x"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].ID == "" || res[0].ID != res[1].ID {
		t.Fatalf("a second create of the same identity must upsert the same user: %+v", res)
	}
	if !directory.IsChangeError(res[2].Err) {
		t.Fatalf("update of a missing user: want a row error, got %v", res[2].Err)
	}
	if s := d.Stats(); s.Creates != 1 || s.Writes != 2 {
		t.Fatalf("stats %+v", s)
	}
	var listed []string
	if err := d.List(ctx, []string{"mail"}, func(u directory.User) error {
		listed = append(listed, u.Identity+"="+u.Attributes["mail"][0])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != "a=a2@x" {
		t.Fatalf("List with ManagedOnly: got %v", listed)
	}
	got, err := d.Lookup(ctx, []string{"a", "outsider", "nobody"}, []string{"mail"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["outsider"].Managed || !got["a"].Managed {
		t.Fatalf("Lookup: %+v", got)
	}
}

func TestFailAfterStopsMidBatch(t *testing.T) {
	ctx := context.Background()
	d := New(opts())
	d.FailAfter(3)
	var changes []directory.Change
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		changes = append(changes, directory.Change{Op: directory.OpCreate, Identity: id})
	}
	if _, err := d.Apply(ctx, changes); !errors.Is(err, ErrInjected) {
		t.Fatalf("want ErrInjected, got %v", err)
	}
	if n := len(d.Users()); n != 3 {
		t.Fatalf("want the 3 writes before the failure to stay, got %d users", n)
	}
	d.FailAfter(-1)
	if _, err := d.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Users()); n != 5 {
		t.Fatalf("got %d users", n)
	}
}

func TestConcurrentApply(t *testing.T) {
	ctx := context.Background()
	d := New(opts())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				id := string(rune('a'+g)) + string(rune('0'+i%10)) + string(rune('0'+i/10))
				if _, err := d.Apply(ctx, []directory.Change{{Op: directory.OpCreate, Identity: id}}); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := len(d.Users()); n != 800 {
		t.Fatalf("got %d users", n)
	}
}

func TestListErrorIsAnError(t *testing.T) {
	d := New(opts())
	d.FailList(errors.New("boom"))
	if err := d.List(context.Background(), nil, func(directory.User) error { return nil }); err == nil {
		t.Fatal("want the injected List error")
	}
}
