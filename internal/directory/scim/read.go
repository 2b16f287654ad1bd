package scim

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/retry"
)

const (
	pageSize = 100
	// A lookup filter joins at most this many identities, in at most
	// maxFilterBytes, to stay well under URL length limits of servers and
	// proxies (8 KiB is common).
	lookupGroup    = 50
	maxFilterBytes = 4000
)

type listResponse struct {
	TotalResults int              `json:"totalResults"`
	Resources    []map[string]any `json:"Resources"`
}

// resolve maps attribute names to the vocabulary.
func resolve(names []string) ([]attribute, error) {
	out := make([]attribute, 0, len(names))
	for _, n := range names {
		a, ok := lookupAttribute(n)
		if !ok {
			return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig,
				"attribute %q is not a SCIM attribute this provider knows (see the SCIM attribute vocabulary)", n)
		}
		out = append(out, a)
	}
	return out, nil
}

// toUser converts a SCIM resource to a directory.User.
func (d *Directory) toUser(res map[string]any, attrs []attribute) directory.User {
	u := directory.User{Attributes: directory.Attributes{}, Active: true}
	u.ID, _ = res["id"].(string)
	if v := d.identity.get(res); len(v) > 0 {
		u.Identity = v[0]
	}
	if a, ok := res["active"].(bool); ok {
		u.Active = a
	}
	u.Managed = d.carriesMarker(res) || !d.opts.ManagedOnly
	for _, a := range attrs {
		if v := a.get(res); len(v) > 0 {
			u.Attributes[a.name] = v
		}
	}
	return u
}

func (d *Directory) carriesMarker(res map[string]any) bool {
	v := d.marker.get(res)
	return len(v) == 1 && v[0] == d.opts.MarkerValue
}

// quote renders s as a SCIM filter string literal (RFC 7644 3.4.2.2: a
// JSON string).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteString(strconv.FormatInt(int64(r)>>4, 16))
			b.WriteString(strconv.FormatInt(int64(r)&0xf, 16))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// page reads /Users page by page, calling fn for each resource. It returns
// the totalResults of the first page and, when the server refuses the
// filter with 400, badFilter true and no error. A listing that ends before
// the server's totalResults is an error: read as complete, it would plan
// creates for users that exist, or deprovision users that were not read.
func (d *Directory) page(ctx context.Context, filter string, count int, fn func(map[string]any) error) (total int, badFilter bool, err error) {
	return d.pageOf(ctx, "/Users", filter, count, fn)
}

// pageOf is page for the resources under path ("/Users", "/Groups").
func (d *Directory) pageOf(ctx context.Context, path, filter string, count int, fn func(map[string]any) error) (total int, badFilter bool, err error) {
	start := 1
	for first := true; ; first = false {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(count)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		lr, bad, err := d.getPage(ctx, path, q)
		if err != nil || bad {
			return 0, bad, err
		}
		if first {
			total = lr.TotalResults
		}
		for _, r := range lr.Resources {
			if err := fn(r); err != nil {
				return total, false, err
			}
		}
		if len(lr.Resources) == 0 && start <= lr.TotalResults {
			return total, false, failure.Errorf(v1alpha1.ReasonDirectoryError,
				"GET %s: the listing ended after %d of the %d resources the server counts (an empty page at startIndex %d); a partial listing is never used",
				path, start-1, lr.TotalResults, start)
		}
		start += len(lr.Resources)
		if len(lr.Resources) == 0 || start > lr.TotalResults {
			return total, false, nil
		}
	}
}

// getPage reads one page of /Users. A read is safe to repeat, so an
// answer whose JSON was cut short is read again before it is an error
// (do retries a 500 on a read). bad is true for a 400 to a filter.
func (d *Directory) getPage(ctx context.Context, path string, q url.Values) (lr listResponse, bad bool, err error) {
	for attempt := 0; ; attempt++ {
		resp, err := d.c.do(ctx, http.MethodGet, path, q, nil)
		switch {
		case err != nil:
			return lr, false, err
		case resp.status == http.StatusBadRequest && q.Get("filter") != "":
			return lr, true, nil
		case !ok2xx(resp.status):
			return lr, false, statusError("GET "+path, resp)
		}
		lr = listResponse{}
		err = decode(resp, &lr)
		if err == nil || attempt >= d.c.maxRetries {
			return lr, false, err
		}
		if serr := d.c.sleep(ctx, retry.Backoff(attempt, backoffBase, backoffCap)); serr != nil {
			return lr, false, serr
		}
	}
}

// List calls fn for every user in scope.
func (d *Directory) List(ctx context.Context, attributes []string, fn func(directory.User) error) error {
	attrs, err := resolve(attributes)
	if err != nil {
		return err
	}
	if !d.opts.ManagedOnly {
		_, _, err := d.page(ctx, "", pageSize, func(r map[string]any) error { return fn(d.toUser(r, attrs)) })
		return err
	}
	emit := func(r map[string]any) error {
		// Servers compare case-insensitively where the attribute allows;
		// the marker is matched exactly, as Managed is.
		if !d.carriesMarker(r) {
			return nil
		}
		return fn(d.toUser(r, attrs))
	}
	caps, err := d.capabilities(ctx)
	if err != nil {
		return err
	}
	if caps.Filter {
		total, bad, err := d.page(ctx, d.marker.path()+" eq "+quote(d.opts.MarkerValue), pageSize, emit)
		if err != nil || (!bad && total > 0) {
			return err
		}
		// No managed user found: make sure the server understood the
		// filter (some answer a filter they cannot evaluate with an empty
		// list) before reporting that there are none.
		all, _, err := d.page(ctx, "", 1, func(map[string]any) error { return errStop })
		if err != nil && err != errStop {
			return err
		}
		if all == 0 && !bad {
			return nil
		}
	}
	_, _, err = d.page(ctx, "", pageSize, emit)
	return err
}

type stopError struct{}

func (stopError) Error() string { return "stop" }

var errStop error = stopError{}

// Lookup returns the users with the given identities.
func (d *Directory) Lookup(ctx context.Context, identities []string, attributes []string) (map[string]directory.User, error) {
	attrs, err := resolve(attributes)
	if err != nil {
		return nil, err
	}
	out := make(map[string]directory.User, len(identities))
	if len(identities) == 0 {
		return out, nil
	}
	caps, err := d.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	var scan []string // identities no filter could find
	if !caps.Filter {
		scan = identities
	} else {
		for group := range groups(d.identity.path(), identities) {
			bad, err := d.lookupSplit(ctx, group, attrs, out)
			if err != nil {
				return nil, err
			}
			scan = append(scan, bad...)
		}
	}
	if err := d.scanFor(ctx, scan, attrs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// scanFor reads every user to find the ones with these identities, for
// identities no filter could find.
func (d *Directory) scanFor(ctx context.Context, identities []string, attrs []attribute, out map[string]directory.User) error {
	if len(identities) == 0 {
		return nil
	}
	_, _, err := d.page(ctx, "", pageSize, func(r map[string]any) error {
		d.match(r, identities, attrs, out)
		return nil
	})
	return err
}

// lookupSplit looks group up; when the server refuses the joined filter it
// halves the group until it finds the identities whose filter it refuses
// (a value with quotes, say), and returns those.
func (d *Directory) lookupSplit(ctx context.Context, group []string, attrs []attribute, out map[string]directory.User) ([]string, error) {
	bad, err := d.lookupFilter(ctx, group, attrs, out)
	if err != nil || !bad {
		return nil, err
	}
	if len(group) == 1 {
		return group, nil
	}
	half := len(group) / 2
	first, err := d.lookupSplit(ctx, group[:half], attrs, out)
	if err != nil {
		return nil, err
	}
	second, err := d.lookupSplit(ctx, group[half:], attrs, out)
	return append(first, second...), err
}

func (d *Directory) lookupFilter(ctx context.Context, group []string, attrs []attribute, out map[string]directory.User) (bool, error) {
	parts := make([]string, len(group))
	for i, id := range group {
		parts[i] = d.identity.path() + " eq " + quote(id)
	}
	_, bad, err := d.page(ctx, strings.Join(parts, " or "), len(group), func(r map[string]any) error {
		d.match(r, group, attrs, out)
		return nil
	})
	return bad, err
}

// match files resource r under the requested identity it has, as
// IdentityFold compares: exactly, or ignoring case for userName, which
// RFC 7643 makes case-insensitive.
func (d *Directory) match(r map[string]any, wanted []string, attrs []attribute, out map[string]directory.User) {
	v := d.identity.get(r)
	if len(v) == 0 {
		return
	}
	fold := d.identityFold()
	for _, id := range wanted {
		if id == v[0] || (fold != nil && fold(id) == fold(v[0])) {
			out[id] = d.toUser(r, attrs)
		}
	}
}

// groups splits identities into filter-sized groups. Identities with
// quotes or backslashes go alone: servers differ in how they read escapes,
// and one refused value should not cost the whole group.
func groups(path string, identities []string) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		var g []string
		size := 0
		for _, id := range identities {
			if strings.ContainsAny(id, `"\`) {
				if !yield([]string{id}) {
					return
				}
				continue
			}
			n := len(path) + len(" eq ") + len(quote(id)) + len(" or ")
			if len(g) > 0 && (len(g) >= lookupGroup || size+n > maxFilterBytes) {
				if !yield(g) {
					return
				}
				g, size = nil, 0
			}
			g = append(g, id)
			size += n
		}
		if len(g) > 0 {
			yield(g)
		}
	}
}
