package ldap

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

func TestConcurrentApply(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	const workers, perWorker = 8, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var changes []directory.Change
			for i := range perWorker {
				uid := fmt.Sprintf("w%d-u%d", w, i)
				changes = append(changes, create(uid, commonAttributes(uid)))
			}
			res, err := d.Apply(context.Background(), changes)
			if err == nil {
				for _, r := range res {
					if r.Err != nil {
						err = r.Err
						break
					}
				}
			}
			if err == nil {
				// Then update each user it created.
				updates := make([]directory.Change, len(res))
				for i, r := range res {
					updates[i] = directory.Change{Op: directory.OpUpdate, Identity: changes[i].Identity, ID: r.ID, Attributes: directory.Attributes{"title": {"Updated"}}}
				}
				_, err = d.Apply(context.Background(), updates)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	listed := listAll(t, d, []string{"title"})
	if len(listed) != workers*perWorker {
		t.Fatalf("listed %d users, want %d", len(listed), workers*perWorker)
	}
	for uid, u := range listed {
		if u.Attributes["title"][0] != "Updated" {
			t.Fatalf("%s: title %v", uid, u.Attributes["title"])
		}
	}
}

func TestBrokenConnectionIsReplaced(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	opts := baseOpts()
	opts.Concurrency = 1
	d := newDir(t, s, baseSpec(s), opts)
	mustApply(t, d, create("before", commonAttributes("before")))
	// Close the pooled connection under the provider's feet.
	for _, sl := range d.pool.slots {
		if sl.conn != nil {
			sl.conn.Close()
		}
	}
	mustApply(t, d, create("after", commonAttributes("after")))
	if len(listAll(t, d, nil)) != 2 {
		t.Error("want 2 users")
	}
}

// drop closes every open connection of a pool with closeFn and returns
// how many it closed.
func drop[C conn](p *pool[C], closeFn func(C)) int {
	n := 0
	for _, sl := range p.slots {
		sl.mu.Lock()
		if sl.open {
			closeFn(sl.conn)
			n++
		}
		sl.mu.Unlock()
	}
	return n
}

// Connections that break while a batch is in flight are replaced and the
// changes retried; creates whose answer was lost are replayed as updates.
func TestApplySurvivesDroppedConnections(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	opts := baseOpts()
	opts.Concurrency = 2
	opts.MaxRetries = 10
	d := newDir(t, s, baseSpec(s), opts)
	const n = 600
	changes := make([]directory.Change, n)
	for i := range changes {
		uid := fmt.Sprintf("drop%04d", i)
		changes[i] = create(uid, commonAttributes(uid))
	}
	stop := make(chan struct{})
	dropped := make(chan int)
	go func() {
		count := 0
		defer func() { dropped <- count }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			count += drop(d.pool, func(c *ldap.Conn) { c.Close() })
			// A pipe's socket is closed under it, as a network failure would.
			count += drop(d.pipes, func(p *pipe) { p.conn.Close() })
		}
	}()
	res, err := d.Apply(context.Background(), changes)
	close(stop)
	if count := <-dropped; count < 3 {
		t.Logf("only %d connections dropped during the batch", count)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("change %d: %v", i, r.Err)
		}
	}
	listed := listAll(t, d, attributeNames(commonAttributes("x")))
	if len(listed) != n {
		t.Fatalf("listed %d users, want %d", len(listed), n)
	}
	for uid, u := range listed {
		if !reflect.DeepEqual(u.Attributes, commonAttributes(uid)) {
			t.Fatalf("%s: attributes %v", uid, u.Attributes)
		}
	}
}
