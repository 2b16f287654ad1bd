package scim

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/leakcheck"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

// seedThrough creates n managed users through d; their identities and
// mail addresses are the values no error may quote.
func seedThrough(t *testing.T, d *Directory, n int) (ids []string, values []string) {
	t.Helper()
	var changes []directory.Change
	for i := range n {
		id := fmt.Sprintf("leak.person%03d@corp.example", i)
		ids = append(ids, id)
		values = append(values, id, "Given"+id[:15])
		changes = append(changes, directory.Change{Op: directory.OpCreate, Identity: id, Attributes: directory.Attributes{
			"userName": {id}, "name.givenName": {"Given" + id[:15]}, orgMarker: {marker},
		}})
	}
	for len(changes) > 0 {
		k := min(len(changes), 50)
		mustApply(t, d, changes[:k]...)
		changes = changes[k:]
	}
	return ids, values
}

// A connection dropped before any answer, on every kind of request, gives
// an error that says what failed and quotes no identity or value: the
// URL of a lookup holds up to 50 identities in its filter.
func TestConnectionResetsGiveErrorsWithoutValues(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	p := scimserver.NewProxy(t, s)
	d := newDir(t, bearerSpec(p.URL), defaultOpts(), bearerSecrets)
	ids, values := seedThrough(t, d, 60)
	ctx := context.Background()

	requests := map[string]struct {
		match func(method, path string) bool
		call  func() error
	}{
		"lookup": {func(m, path string) bool { return m == http.MethodGet && strings.Contains(path, "filter=") },
			func() error { _, err := d.Lookup(ctx, ids, []string{"name.givenName"}); return err }},
		"list": {scimserver.Method(http.MethodGet),
			func() error {
				return d.List(ctx, []string{"name.givenName"}, func(directory.User) error { return nil })
			}},
		"create": {scimserver.Method(http.MethodPost),
			func() error {
				res, err := d.Apply(ctx, []directory.Change{{Op: directory.OpCreate, Identity: "new.leak@corp.example",
					Attributes: directory.Attributes{"userName": {"new.leak@corp.example"}, orgMarker: {marker}}}})
				return leakcheck.FirstError(res, err)
			}},
		"update": {func(m, _ string) bool { return m == http.MethodPatch || m == http.MethodPut || m == http.MethodPost },
			func() error {
				u, _ := lookupOne(t, d, ids[0], nil)
				res, err := d.Apply(ctx, []directory.Change{{Op: directory.OpUpdate, Identity: ids[0], ID: u.ID,
					Attributes: directory.Attributes{"name.givenName": {"Changed" + ids[0]}}}})
				return leakcheck.FirstError(res, err)
			}},
	}
	values = append(values, "new.leak@corp.example", "Changed"+ids[0])
	for name, r := range requests {
		t.Run(name, func(t *testing.T) {
			p.FaultNext(1000, r.match, scimserver.FaultReset)
			defer p.ClearFaults()
			err := r.call()
			if err == nil {
				t.Fatal("no error although every connection was reset")
			}
			leakcheck.NoValues(t, name+" error", err.Error(), values)
			if !strings.Contains(err.Error(), "/Users") && !strings.Contains(err.Error(), "/Bulk") {
				t.Errorf("%s error does not say which request failed: %v", name, err)
			}
		})
	}
}

// A listing shorter than the server's totalResults is an error, never a
// complete snapshot; a page cut short or answered with HTTP 500 is read
// again.
func TestPartialListingIsAnError(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	p := scimserver.NewProxy(t, s)
	d := newDir(t, bearerSpec(p.URL), defaultOpts(), bearerSecrets)
	seedThrough(t, d, 250) // three pages of 100
	ctx := context.Background()
	count := func() (int, error) {
		n := 0
		err := d.List(ctx, []string{"name.givenName"}, func(directory.User) error { n++; return nil })
		return n, err
	}
	if n, err := count(); err != nil || n != 250 {
		t.Fatalf("listing: %d users, %v", n, err)
	}
	secondPage := func(m, path string) bool { return m == http.MethodGet && strings.Contains(path, "startIndex=101") }

	p.FaultNext(1, secondPage, scimserver.FaultEmptyPage)
	n, err := count()
	if err == nil || !strings.Contains(err.Error(), "partial listing") {
		t.Fatalf("empty second page: %d users, %v; want an error", n, err)
	}
	p.ClearFaults()

	p.FaultNext(1, secondPage, scimserver.FaultTruncated)
	if n, err := count(); err != nil || n != 250 {
		t.Fatalf("truncated page read again: %d users, %v", n, err)
	}
	p.ClearFaults()

	p.FailNext(1, http.StatusInternalServerError, "")
	if n, err := count(); err != nil || n != 250 {
		t.Fatalf("HTTP 500 read again: %d users, %v", n, err)
	}
	p.FaultNext(1000, secondPage, scimserver.FaultTruncated)
	if _, err := count(); err == nil {
		t.Fatal("a page that never arrives whole must fail the listing")
	}
}

// A /Bulk request whose answer is lost after the server wrote it is sent
// again; the creates it then refuses are resolved with a few filtered
// lookups, not a lookup and a PATCH each.
func TestReplayedBulkDoesNotFanOut(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token, BulkMaxOperations: 100})
	p := scimserver.NewProxy(t, s)
	d := newDir(t, bearerSpec(p.URL), defaultOpts(), bearerSecrets)
	ctx := context.Background()
	if caps, err := d.Check(ctx); err != nil || !caps.Bulk {
		t.Fatalf("the test server must offer /Bulk: %+v, %v", caps, err)
	}
	var changes []directory.Change
	for i := range 100 {
		id := fmt.Sprintf("bulk.person%03d@corp.example", i)
		changes = append(changes, directory.Change{Op: directory.OpCreate, Identity: id, Attributes: directory.Attributes{
			"userName": {id}, "name.givenName": {fmt.Sprintf("Given%03d", i)}, orgMarker: {marker},
		}})
	}
	p.Reset()
	p.FaultNext(1, func(m, path string) bool { return m == http.MethodPost && strings.HasPrefix(path, "/Bulk") }, scimserver.FaultResetAfter)
	res := mustApply(t, d, changes...)
	var patches, lookups, bulks int
	for _, r := range p.Requests() {
		switch {
		case r.Method == http.MethodPatch || r.Method == http.MethodPut:
			patches++
		case r.Method == http.MethodGet && strings.Contains(r.Path, "filter="):
			lookups++
		case r.Method == http.MethodPost && strings.HasPrefix(r.Path, "/Bulk"):
			bulks++
		}
	}
	if bulks != 2 || patches != 0 || lookups > 2 {
		t.Fatalf("replayed bulk: %d bulk requests, %d PATCH/PUT, %d lookups; want 2, 0, at most 2", bulks, patches, lookups)
	}
	for i, r := range res {
		if r.ID == "" {
			t.Fatalf("change %d has no id after the replay", i)
		}
		if u, ok := lookupOne(t, d, changes[i].Identity, nil); !ok || u.ID != r.ID {
			t.Fatalf("user %d: %+v, result id %s", i, u, r.ID)
		}
	}
}

// A request that stalls past the request timeout is abandoned and sent
// again; the batch completes.
func TestStalledRequestIsRetriedAfterTheTimeout(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	p := scimserver.NewProxy(t, s)
	opts := defaultOpts()
	opts.RequestTimeout = 300 * time.Millisecond
	spec := bearerSpec(p.URL)
	spec.DisableBulk = true
	d := newDir(t, spec, opts, bearerSecrets)
	p.StallNext(1, scimserver.Method(http.MethodPost), time.Minute)
	start := time.Now()
	mustApply(t, d, directory.Change{Op: directory.OpCreate, Identity: "stalled@corp.example",
		Attributes: directory.Attributes{"userName": {"stalled@corp.example"}, orgMarker: {marker}}})
	if waited := time.Since(start); waited > 20*time.Second {
		t.Fatalf("the create waited %v for a request stalled a minute", waited)
	}
	if _, ok := lookupOne(t, d, "stalled@corp.example", nil); !ok {
		t.Fatal("user missing after the retry")
	}
}
