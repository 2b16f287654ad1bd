package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// defaultBulkPayload is assumed when a server offers /Bulk without saying
// how large a request may be.
const defaultBulkPayload = 1 << 20

// Apply writes a batch: one /Bulk request (or a few, within the server's
// limits) when the server offers it, else one request per change.
func (d *Directory) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	caps, err := d.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	results := make([]directory.Result, len(changes))
	if caps.Bulk && !d.disableBulk && len(changes) > 1 {
		if err := d.applyBulk(ctx, caps, changes, results); err != nil {
			return nil, err
		}
		return results, nil
	}
	for i, ch := range changes {
		r, err := d.applyOne(ctx, caps, ch)
		if err != nil {
			return nil, err
		}
		results[i] = r
	}
	return results, nil
}

func userPath(id string) string { return "/Users/" + url.PathEscape(id) }

// applyOne writes one change with one request (two for PUT updates).
// Errors are failures of the directory as a whole; a refusal of this
// change alone is in the Result.
func (d *Directory) applyOne(ctx context.Context, caps directory.Capabilities, ch directory.Change) (directory.Result, error) {
	switch ch.Op {
	case directory.OpCreate:
		return d.create(ctx, caps, ch)
	case directory.OpUpdate:
		var active *bool
		if ch.Reactivate {
			active = ptr(true)
		}
		return d.update(ctx, caps, ch.ID, ch.Attributes, active)
	case directory.OpDeactivate:
		return d.update(ctx, caps, ch.ID, nil, ptr(false))
	case directory.OpDelete:
		resp, err := d.c.do(ctx, http.MethodDelete, userPath(ch.ID), nil, nil)
		if err != nil {
			return directory.Result{}, err
		}
		if ok2xx(resp.status) || resp.status == http.StatusNotFound {
			return directory.Result{}, nil
		}
		return rowResult("delete", resp.status, resp.scimType())
	}
	return directory.Result{Err: &directory.ChangeError{Msg: fmt.Sprintf("unknown change %v", ch.Op)}}, nil
}

func ptr[T any](v T) *T { return &v }

// createBody is the resource a create posts: the row's attributes, the
// marker, active.
func (d *Directory) createBody(ch directory.Change) (map[string]any, error) {
	res, err := newResource(ch.Attributes)
	if err != nil {
		return nil, err
	}
	d.marker.set(res, []string{d.opts.MarkerValue})
	return res, nil
}

func (d *Directory) create(ctx context.Context, caps directory.Capabilities, ch directory.Change) (directory.Result, error) {
	body, err := d.createBody(ch)
	if err != nil {
		return directory.Result{Err: err}, nil
	}
	resp, err := d.c.do(ctx, http.MethodPost, "/Users", nil, body)
	if err != nil {
		return directory.Result{}, err
	}
	if ok2xx(resp.status) {
		var created struct {
			ID string `json:"id"`
		}
		if err := decode(resp, &created); err != nil {
			return directory.Result{}, err
		}
		return directory.Result{ID: created.ID}, nil
	}
	if resp.status == http.StatusConflict {
		return d.resolveConflict(ctx, caps, ch)
	}
	return rowResult("create", resp.status, resp.scimType())
}

// resolveConflict handles a create refused with 409. When the identity is
// taken by a managed user, the create is a replay (of a row written before
// an interruption) and becomes an update of that user, or nothing when the
// user already holds what the create would write.
func (d *Directory) resolveConflict(ctx context.Context, caps directory.Capabilities, ch directory.Change) (directory.Result, error) {
	res := make([]directory.Result, 1)
	err := d.resolveConflicts(ctx, caps, []directory.Change{ch}, []int{0}, res)
	return res[0], err
}

// update changes attributes and/or active: PATCH with only what changes,
// or GET and PUT when the server does not offer PATCH.
func (d *Directory) update(ctx context.Context, caps directory.Capabilities, id string, attrs directory.Attributes, active *bool) (directory.Result, error) {
	if caps.Patch {
		body, err := patchBody(attrs, active)
		if err != nil {
			return directory.Result{Err: err}, nil
		}
		if body == nil {
			return directory.Result{}, nil
		}
		resp, err := d.c.do(ctx, http.MethodPatch, userPath(id), nil, body)
		if err != nil {
			return directory.Result{}, err
		}
		if ok2xx(resp.status) {
			return directory.Result{}, nil
		}
		if resp.status != http.StatusNotImplemented && resp.status != http.StatusMethodNotAllowed {
			return rowResult("update", resp.status, resp.scimType())
		}
		// Advertised but refused: replace the whole user instead.
	}
	resp, err := d.c.do(ctx, http.MethodGet, userPath(id), nil, nil)
	if err != nil {
		return directory.Result{}, err
	}
	if !ok2xx(resp.status) {
		return rowResult("read before update", resp.status, resp.scimType())
	}
	var res map[string]any
	if err := decode(resp, &res); err != nil {
		return directory.Result{}, err
	}
	if err := applyToResource(res, attrs, active); err != nil {
		return directory.Result{Err: err}, nil
	}
	resp, err = d.c.do(ctx, http.MethodPut, userPath(id), nil, res)
	if err != nil {
		return directory.Result{}, err
	}
	if ok2xx(resp.status) {
		return directory.Result{}, nil
	}
	return rowResult("update", resp.status, resp.scimType())
}

// patchBody is the PatchOp message of an update, nil when nothing changes.
func patchBody(attrs directory.Attributes, active *bool) (map[string]any, error) {
	ops, err := patchOperations(attrs, false)
	if err != nil {
		return nil, err
	}
	if active != nil {
		ops = append(ops, map[string]any{"op": "replace", "path": "active", "value": *active})
	}
	if len(ops) == 0 {
		return nil, nil
	}
	return map[string]any{"schemas": []any{patchOpSchema}, "Operations": ops}, nil
}

// rowResult turns a refusal into a row error, or into an error of the whole
// directory when it is not about this change (credentials, outage).
func rowResult(what string, status int, scimType string) (directory.Result, error) {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return directory.Result{}, failure.Errorf(v1alpha1.ReasonAuthenticationFailed, "%s: HTTP %d: the server refused the credentials", what, status)
	case retryable(status):
		return directory.Result{}, failure.Errorf(v1alpha1.ReasonUnreachable, "%s: HTTP %d after retries", what, status)
	case status == http.StatusNotFound:
		return directory.Result{Err: &directory.ChangeError{Msg: what + ": the user no longer exists (HTTP 404)"}}, nil
	}
	msg := fmt.Sprintf("%s: refused with HTTP %d", what, status)
	if scimType != "" && len(scimType) <= 32 && isKeyword(scimType) {
		msg += " (" + scimType + ")"
	}
	return directory.Result{Err: &directory.ChangeError{Msg: msg}}, nil
}

// bulkOperation is one operation of a /Bulk request (RFC 7644 3.7).
type bulkOperation struct {
	Method string         `json:"method"`
	BulkID string         `json:"bulkId,omitempty"`
	Path   string         `json:"path"`
	Data   map[string]any `json:"data,omitempty"`

	index int // of the change in the batch
	size  int // encoded bytes
}

type bulkResponse struct {
	Operations []struct {
		Method   string          `json:"method"`
		BulkID   string          `json:"bulkId"`
		Location string          `json:"location"`
		Status   json.RawMessage `json:"status"`
		Response json.RawMessage `json:"response"`
	} `json:"Operations"`
}

// applyBulk sends the batch as /Bulk requests within the server's limits.
// Changes /Bulk cannot carry here (updates without PATCH) and operations
// the server could not do for a passing reason go one by one.
func (d *Directory) applyBulk(ctx context.Context, caps directory.Capabilities, changes []directory.Change, results []directory.Result) error {
	maxPayload := caps.MaxBulkPayloadBytes
	if maxPayload <= 0 {
		maxPayload = defaultBulkPayload
	}
	var ops []bulkOperation
	var single []int
	for i, ch := range changes {
		op, err := d.bulkOp(caps, i, ch)
		if err != nil {
			results[i] = directory.Result{Err: err}
			continue
		}
		if op == nil {
			single = append(single, i)
			continue
		}
		b, err := json.Marshal(op)
		if err != nil {
			return err
		}
		op.size = len(b)
		if int64(op.size)+200 > maxPayload {
			single = append(single, i)
			continue
		}
		ops = append(ops, *op)
	}

	// Split into requests of at most maxOperations and maxPayload.
	var chunk []bulkOperation
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		redo, err := d.sendBulk(ctx, caps, changes, chunk, results)
		single = append(single, redo...)
		chunk, size = nil, 0
		return err
	}
	for _, op := range ops {
		if len(chunk) > 0 && (len(chunk) >= caps.MaxBulkOperations || int64(size+op.size+1+200) > maxPayload) {
			if err := flush(); err != nil {
				return err
			}
		}
		chunk = append(chunk, op)
		size += op.size + 1
	}
	if err := flush(); err != nil {
		return err
	}
	for _, i := range single {
		r, err := d.applyOne(ctx, caps, changes[i])
		if err != nil {
			return err
		}
		results[i] = r
	}
	return nil
}

// bulkOp builds the operation of a change; nil when it must go alone.
func (d *Directory) bulkOp(caps directory.Capabilities, i int, ch directory.Change) (*bulkOperation, error) {
	op := &bulkOperation{BulkID: "op" + strconv.Itoa(i), index: i}
	switch ch.Op {
	case directory.OpCreate:
		body, err := d.createBody(ch)
		if err != nil {
			return nil, err
		}
		op.Method, op.Path, op.Data = http.MethodPost, "/Users", body
	case directory.OpUpdate, directory.OpDeactivate:
		if !caps.Patch {
			return nil, nil
		}
		var active *bool
		if ch.Op == directory.OpDeactivate {
			active = ptr(false)
		} else if ch.Reactivate {
			active = ptr(true)
		}
		attrs := ch.Attributes
		if ch.Op == directory.OpDeactivate {
			attrs = nil
		}
		body, err := patchBody(attrs, active)
		if err != nil {
			return nil, err
		}
		if body == nil {
			return nil, nil // nothing to write: applyOne answers at once
		}
		op.Method, op.Path, op.Data = http.MethodPatch, userPath(ch.ID), body
	case directory.OpDelete:
		op.Method, op.Path = http.MethodDelete, userPath(ch.ID)
	default:
		return nil, nil
	}
	return op, nil
}

// sendBulk sends one /Bulk request and files its outcomes. It returns the
// indexes of changes to retry one by one.
func (d *Directory) sendBulk(ctx context.Context, caps directory.Capabilities, changes []directory.Change, chunk []bulkOperation, results []directory.Result) ([]int, error) {
	indexes := func() []int {
		out := make([]int, len(chunk))
		for i, op := range chunk {
			out[i] = op.index
		}
		return out
	}
	body := map[string]any{"schemas": []any{bulkRequestURN}, "Operations": chunk}
	resp, err := d.c.do(ctx, http.MethodPost, "/Bulk", nil, body)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden:
		return nil, statusError("POST /Bulk", resp)
	case resp.status == http.StatusRequestEntityTooLarge && len(chunk) > 1:
		half := len(chunk) / 2
		redo, err := d.sendBulk(ctx, caps, changes, chunk[:half], results)
		if err != nil {
			return nil, err
		}
		more, err := d.sendBulk(ctx, caps, changes, chunk[half:], results)
		return append(redo, more...), err
	case !ok2xx(resp.status):
		// The server could not take the request as a whole; each change
		// alone may still go through.
		return indexes(), nil
	}
	var br bulkResponse
	if err := decode(resp, &br); err != nil {
		return nil, err
	}
	byID := make(map[string]int, len(chunk))
	for i, op := range chunk {
		byID[op.BulkID] = i
	}
	done := make([]bool, len(chunk))
	var redo, conflicts []int
	for n, r := range br.Operations {
		i, ok := byID[r.BulkID]
		if !ok {
			if r.BulkID != "" || n >= len(chunk) {
				continue
			}
			i = n // servers need not echo bulkId for other methods than POST
		}
		if done[i] {
			continue
		}
		done[i] = true
		op := chunk[i]
		status := bulkStatus(r.Status)
		ch := changes[op.index]
		switch {
		case ok2xx(status) || (op.Method == http.MethodDelete && status == http.StatusNotFound):
			if op.Method == http.MethodPost {
				results[op.index] = directory.Result{ID: createdID(r.Location, r.Response)}
			} else {
				results[op.index] = directory.Result{}
			}
		case op.Method == http.MethodPost && status == http.StatusConflict:
			conflicts = append(conflicts, op.index)
		case status == 0 || retryable(status):
			redo = append(redo, op.index)
		default:
			res, err := rowResult(ch.Op.String(), status, scimTypeOf(r.Response))
			if err != nil {
				return nil, err
			}
			results[op.index] = res
		}
	}
	for i, op := range chunk {
		if !done[i] {
			// The server stopped before this operation (failOnErrors) or
			// left it out: do it alone.
			redo = append(redo, op.index)
		}
	}
	if err := d.resolveConflicts(ctx, caps, changes, conflicts, results); err != nil {
		return nil, err
	}
	return redo, nil
}

// resolveConflicts handles the creates of a bulk request refused with
// 409, together: a bulk request replayed after its answer was lost (a
// connection reset after the server wrote it) refuses every create. One
// filtered lookup per group of identities finds the users; those that
// already hold what the create would write need no request at all, the
// others are updated.
func (d *Directory) resolveConflicts(ctx context.Context, caps directory.Capabilities, changes []directory.Change, idx []int, results []directory.Result) error {
	if len(idx) == 0 {
		return nil
	}
	ids := make([]string, len(idx))
	names := map[string]bool{}
	for i, k := range idx {
		ids[i] = changes[k].Identity
		for a := range changes[k].Attributes {
			names[a] = true
		}
	}
	attrs := make([]string, 0, len(names))
	for a := range names {
		attrs = append(attrs, a)
	}
	found, err := d.Lookup(ctx, ids, attrs)
	if err != nil {
		return err
	}
	var missed []string
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			missed = append(missed, id)
		}
	}
	if len(missed) > 0 {
		// A 409 that the filtered lookup cannot explain: the server may
		// have misread the filter (some keep a quoted value's escapes
		// literally). Reading every user tells whether the identity is
		// the attribute taken.
		resolved, err := resolve(attrs)
		if err != nil {
			return err
		}
		if err := d.scanFor(ctx, missed, resolved, found); err != nil {
			return err
		}
	}
	for _, k := range idx {
		ch := changes[k]
		u, ok := found[ch.Identity]
		switch {
		case !ok:
			results[k] = directory.Result{Err: &directory.ChangeError{
				Msg: fmt.Sprintf("a unique attribute other than %s is already taken by another user (409 uniqueness)", d.identity.name)}}
			continue
		case !u.Managed:
			results[k] = directory.Result{Err: &directory.ChangeError{
				Msg: fmt.Sprintf("%s: already taken by a user that imports do not manage (409 uniqueness)", d.identity.name)}}
			continue
		}
		diff := directory.Attributes{}
		for a, v := range ch.Attributes {
			if !slices.Equal(v, u.Attributes[a]) && (len(v) > 0 || len(u.Attributes[a]) > 0) {
				diff[a] = v
			}
		}
		if len(diff) == 0 && u.Active {
			results[k] = directory.Result{ID: u.ID}
			continue
		}
		r, err := d.update(ctx, caps, u.ID, diff, ptr(true))
		if err != nil {
			return err
		}
		if r.Err == nil {
			r.ID = u.ID
		}
		results[k] = r
	}
	return nil
}

// bulkStatus reads a bulk operation status: "201" per RFC 7644, or a
// number, or {"code": 201} as some servers send.
func bulkStatus(raw json.RawMessage) int {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, _ := strconv.Atoi(strings.TrimSpace(s))
		return n
	}
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var c struct {
		Code json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &c) == nil && c.Code != nil {
		return bulkStatus(c.Code)
	}
	return 0
}

func createdID(location string, response json.RawMessage) string {
	var r struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(response, &r) == nil && r.ID != "" {
		return r.ID
	}
	if location != "" {
		if u, err := url.Parse(location); err == nil {
			if id, err := url.PathUnescape(path.Base(u.Path)); err == nil {
				return id
			}
		}
	}
	return ""
}

func scimTypeOf(response json.RawMessage) string {
	var e scimError
	_ = json.Unmarshal(response, &e)
	return e.ScimType
}
