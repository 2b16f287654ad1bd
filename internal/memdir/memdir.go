// Package memdir is an in-process directory.Directory for unit tests and
// the engine benchmark. It is not a stand-in for a server in integration
// tests: providers are tested against real SCIM, LDAP and SQL servers.
//
// A Dir counts its writes and can be told to fail after a number of writes,
// which simulates an interrupted import (a killed pod, a lost connection)
// at a precise point.
package memdir

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/userimport/user-import-operator/internal/directory"
)

// ErrInjected is the error Apply returns once the write budget set by
// FailAfter is spent.
var ErrInjected = errors.New("memdir: injected failure")

// Dir is an in-memory directory, safe for concurrent use.
type Dir struct {
	opts directory.Options

	mu        sync.Mutex
	users     map[string]*directory.User // by identity
	byID      map[string]string          // id → identity
	nextID    int64
	writes    int64
	creates   int64
	failAfter int64 // writes left before Apply fails; <0 never
	applies   int64
	lists     int64
	lookups   int64
	listErr   error
	groups    map[string]*group // by name
}

// New returns an empty directory. opts.IdentityAttribute names the
// identity attribute; opts.ManagedOnly limits List to users carrying
// opts.MarkerAttribute = opts.MarkerValue.
func New(opts directory.Options) *Dir {
	return &Dir{
		opts:      opts,
		users:     map[string]*directory.User{},
		byID:      map[string]string{},
		failAfter: -1,
	}
}

// Put adds or replaces a user, bypassing the write counter: it seeds the
// directory before a test. An empty ID is assigned. Managed is derived
// from the marker attribute.
func (d *Dir) Put(u directory.User) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u.Attributes = cloneAttrs(u.Attributes)
	if u.Identity == "" {
		u.Identity = first(u.Attributes[d.opts.IdentityAttribute])
	}
	if u.Attributes == nil {
		u.Attributes = directory.Attributes{}
	}
	u.Attributes[d.opts.IdentityAttribute] = []string{u.Identity}
	if u.ID == "" {
		d.nextID++
		u.ID = fmt.Sprintf("id-%d", d.nextID)
	}
	if old, ok := d.users[u.Identity]; ok {
		delete(d.byID, old.ID)
	}
	u.Managed = d.isManaged(u.Attributes)
	d.users[u.Identity] = &u
	d.byID[u.ID] = u.Identity
}

// FailAfter makes Apply fail with ErrInjected once n more changes have been
// written; the changes of the batch before that point stay written, as
// with a real interruption. A negative n disables the failure.
func (d *Dir) FailAfter(n int64) {
	d.mu.Lock()
	d.failAfter = n
	d.mu.Unlock()
}

// FailList makes List fail with err (nil restores it).
func (d *Dir) FailList(err error) {
	d.mu.Lock()
	d.listErr = err
	d.mu.Unlock()
}

// Stats are counters of the calls a Dir served.
type Stats struct {
	// Writes counts the changes written.
	Writes int64
	// Creates counts the users created.
	Creates int64
	// Applies, Lists and Lookups count calls.
	Applies, Lists, Lookups int64
}

// Stats returns the counters.
func (d *Dir) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Writes: d.writes, Creates: d.creates, Applies: d.applies, Lists: d.lists, Lookups: d.lookups}
}

// Users returns a copy of every user, ordered by identity.
func (d *Dir) Users() []directory.User {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]directory.User, 0, len(d.users))
	for _, u := range d.users {
		c := *u
		c.Attributes = cloneAttrs(u.Attributes)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// Check implements directory.Directory.
func (d *Dir) Check(context.Context) (directory.Capabilities, error) {
	return directory.Capabilities{Bulk: true, MaxBulkOperations: 1000, Patch: true, Filter: true, PagedSearch: true}, nil
}

// List implements directory.Directory. Users are visited in identity
// order so that runs are reproducible; fn must not call back into d.
func (d *Dir) List(ctx context.Context, attributes []string, fn func(directory.User) error) error {
	d.mu.Lock()
	d.lists++
	if d.listErr != nil {
		err := d.listErr
		d.mu.Unlock()
		return err
	}
	users := make([]directory.User, 0, len(d.users))
	for _, u := range d.users {
		if d.opts.ManagedOnly && !u.Managed {
			continue
		}
		users = append(users, d.project(u, attributes))
	}
	d.mu.Unlock()
	sort.Slice(users, func(i, j int) bool { return users[i].Identity < users[j].Identity })
	for _, u := range users {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

// Lookup implements directory.Directory.
func (d *Dir) Lookup(ctx context.Context, identities []string, attributes []string) (map[string]directory.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups++
	out := make(map[string]directory.User, len(identities))
	for _, id := range identities {
		if u, ok := d.users[id]; ok {
			out[id] = d.project(u, attributes)
		}
	}
	return out, nil
}

// Apply implements directory.Directory. Like the real providers it
// upserts by identity: a create of an existing identity updates that
// user, so that replaying rows after a resume never duplicates a user.
func (d *Dir) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applies++
	results := make([]directory.Result, len(changes))
	for i, c := range changes {
		if d.failAfter == 0 {
			return nil, ErrInjected
		}
		res, wrote := d.apply(c)
		results[i] = res
		if wrote {
			d.writes++
			if d.failAfter > 0 {
				d.failAfter--
			}
		}
	}
	return results, nil
}

func (d *Dir) apply(c directory.Change) (directory.Result, bool) {
	if c.Identity == "" {
		return directory.Result{Err: &directory.ChangeError{Msg: d.opts.IdentityAttribute + ": empty identity"}}, false
	}
	u, exists := d.users[c.Identity]
	switch c.Op {
	case directory.OpCreate, directory.OpUpdate:
		if !exists {
			if c.Op == directory.OpUpdate {
				return directory.Result{Err: &directory.ChangeError{Msg: "user not found"}}, false
			}
			d.nextID++
			u = &directory.User{ID: fmt.Sprintf("id-%d", d.nextID), Identity: c.Identity, Attributes: directory.Attributes{}, Active: true}
			d.users[c.Identity] = u
			d.byID[u.ID] = c.Identity
			d.creates++
		}
		for k, v := range c.Attributes {
			if len(v) == 0 {
				delete(u.Attributes, k)
			} else {
				u.Attributes[k] = slices.Clone(v)
			}
		}
		u.Attributes[d.opts.IdentityAttribute] = []string{c.Identity}
		if c.Op == directory.OpCreate || c.Reactivate {
			u.Active = true
		}
		u.Managed = d.isManaged(u.Attributes)
		return directory.Result{ID: u.ID}, true
	case directory.OpDeactivate:
		if !exists {
			return directory.Result{Err: &directory.ChangeError{Msg: "user not found"}}, false
		}
		u.Active = false
		return directory.Result{ID: u.ID}, true
	case directory.OpDelete:
		if !exists {
			// Deleting a user that is gone already is done.
			return directory.Result{}, true
		}
		delete(d.users, c.Identity)
		delete(d.byID, u.ID)
		return directory.Result{ID: u.ID}, true
	}
	return directory.Result{Err: &directory.ChangeError{Msg: "unknown operation " + c.Op.String()}}, false
}

// Close implements directory.Directory.
func (d *Dir) Close() error { return nil }

func (d *Dir) isManaged(a directory.Attributes) bool {
	if d.opts.MarkerAttribute == "" {
		return true
	}
	return slices.Contains(a[d.opts.MarkerAttribute], d.opts.MarkerValue)
}

// project copies u with only the named attributes.
func (d *Dir) project(u *directory.User, attributes []string) directory.User {
	c := *u
	c.Attributes = make(directory.Attributes, len(attributes))
	for _, a := range attributes {
		if v, ok := u.Attributes[a]; ok {
			c.Attributes[a] = slices.Clone(v)
		}
	}
	return c
}

func cloneAttrs(a directory.Attributes) directory.Attributes {
	if a == nil {
		return nil
	}
	out := make(directory.Attributes, len(a))
	for k, v := range a {
		out[k] = slices.Clone(v)
	}
	return out
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

var _ directory.Directory = (*Dir)(nil)
