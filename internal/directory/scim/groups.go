package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// Groups are the service's /Groups, named by displayName. A group the
// import creates carries the marker value in externalId. Members are
// added and removed with PATCH, at most spec.groups.maxPatchOperations
// members a request: a change of ten thousand members is a hundred
// PATCHes with the default, each of which the service applies whole, so
// a change applied again after an interruption adds and removes nothing
// twice. A service that offers /Bulk gets the PATCHes of a group in /Bulk
// requests, within its limits of operations and payload.

const (
	coreGroupSchema           = "urn:ietf:params:scim:schemas:core:2.0:Group"
	defaultMaxPatchOperations = 100
)

// HasGroups tells whether spec.groups is set.
func (d *Directory) HasGroups() bool { return d.maxPatchMembers > 0 }

// MemberReference is the user's id.
func (d *Directory) MemberReference(u directory.User) string { return u.ID }

// ManagerReference is the manager's id, the value of the enterprise
// extension's manager.
func (d *Directory) ManagerReference(u directory.User) string { return u.ID }

// PredictReference is false: the service assigns ids when it creates.
func (d *Directory) PredictReference(string) (string, bool) { return "", false }

// IdentityFold is directory.FoldCaseLoosely when the identity is
// userName, which RFC 7643 makes case-insensitive without saying by which
// case mapping (as Lookup matches it); other identities compare exactly.
func (d *Directory) IdentityFold(context.Context) (func(string) string, error) {
	return d.identityFold(), nil
}

func (d *Directory) identityFold() func(string) string {
	if d.identity.key == "userName" {
		return directory.FoldCaseLoosely
	}
	return nil
}

func groupPath(id string) string { return "/Groups/" + url.PathEscape(id) }

// ListGroups reads every group with its members.
func (d *Directory) ListGroups(ctx context.Context, fn func(directory.Group) error) error {
	if !d.HasGroups() {
		return failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.scim.groups is not set")
	}
	_, _, err := d.pageOf(ctx, "/Groups", "", pageSize, func(r map[string]any) error {
		g := directory.Group{Name: str(r["displayName"]), ID: str(r["id"])}
		g.Managed = str(r["externalId"]) == d.opts.MarkerValue
		members, _ := r["members"].([]any)
		for _, m := range members {
			if mm, ok := m.(map[string]any); ok {
				if v := str(mm["value"]); v != "" {
					g.Members = append(g.Members, v)
				}
			}
		}
		return fn(g)
	})
	return err
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// ApplyGroup creates a group or changes its members.
func (d *Directory) ApplyGroup(ctx context.Context, ch directory.GroupChange) (string, error) {
	if !d.HasGroups() {
		return "", failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.scim.groups is not set")
	}
	id := ch.ID
	add := ch.Add
	if id == "" {
		var err error
		first := add[:min(len(add), d.maxPatchMembers)]
		if id, err = d.createGroup(ctx, ch.Name, first); err != nil {
			return "", err
		}
		add = add[len(first):]
	}
	patches := d.memberPatches(add, ch.Remove)
	if len(patches) == 0 {
		return id, nil
	}
	caps, err := d.capabilities(ctx)
	if err != nil {
		return id, err
	}
	if caps.Bulk && caps.Patch && !d.disableBulk && len(patches) > 1 {
		return id, d.bulkPatches(ctx, caps, id, patches)
	}
	for _, body := range patches {
		if err := d.patchGroup(ctx, id, body); err != nil {
			return id, err
		}
	}
	return id, nil
}

// patchGroup sends one PatchOp message to group id.
func (d *Directory) patchGroup(ctx context.Context, id string, body map[string]any) error {
	resp, err := d.c.do(ctx, http.MethodPatch, groupPath(id), nil, body)
	if err != nil {
		return err
	}
	return groupResult("change the members of a group", resp.status, resp.scimType())
}

// memberPatches are the PatchOp messages that add and remove members, at
// most maxPatchMembers members each.
func (d *Directory) memberPatches(add, remove []string) []map[string]any {
	var out []map[string]any
	for len(add) > 0 || len(remove) > 0 {
		var ops []map[string]any
		n := 0
		if len(add) > 0 {
			k := min(len(add), d.maxPatchMembers)
			values := make([]map[string]any, k)
			for i, m := range add[:k] {
				values[i] = map[string]any{"value": m}
			}
			ops = append(ops, map[string]any{"op": "add", "path": "members", "value": values})
			add, n = add[k:], k
		}
		for n < d.maxPatchMembers && len(remove) > 0 {
			ops = append(ops, map[string]any{"op": "remove", "path": "members[value eq " + quote(remove[0]) + "]"})
			remove, n = remove[1:], n+1
		}
		out = append(out, map[string]any{"schemas": []any{patchOpSchema}, "Operations": ops})
	}
	return out
}

// bulkPatches sends the PATCHes of one group as /Bulk requests within the
// service's limits of operations and payload. An operation the service
// refuses for a passing reason is sent again alone.
func (d *Directory) bulkPatches(ctx context.Context, caps directory.Capabilities, id string, patches []map[string]any) error {
	maxOps := caps.MaxBulkOperations
	if maxOps <= 0 {
		maxOps = len(patches)
	}
	maxPayload := caps.MaxBulkPayloadBytes
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	for len(patches) > 0 {
		var chunk []bulkOperation
		size := int64(256) // the envelope
		for len(patches) > 0 && len(chunk) < maxOps {
			op := bulkOperation{Method: http.MethodPatch, Path: groupPath(id), Data: patches[0]}
			b, err := json.Marshal(op)
			if err != nil {
				return err
			}
			if len(chunk) > 0 && size+int64(len(b))+1 > maxPayload {
				break
			}
			size += int64(len(b)) + 1
			chunk = append(chunk, op)
			patches = patches[1:]
		}
		body := map[string]any{"schemas": []any{bulkRequestURN}, "Operations": chunk}
		resp, err := d.c.do(ctx, http.MethodPost, "/Bulk", nil, body)
		if err != nil {
			return err
		}
		if err := groupResult("POST /Bulk with the members of a group", resp.status, resp.scimType()); err != nil {
			return err
		}
		var br bulkResponse
		if err := decode(resp, &br); err != nil {
			return err
		}
		if len(br.Operations) > len(chunk) {
			br.Operations = br.Operations[:len(chunk)]
		}
		for i, r := range br.Operations {
			status := bulkStatus(r.Status)
			if ok2xx(status) {
				continue
			}
			if status != 0 && !retryable(status) {
				return groupResult("change the members of a group", status, scimTypeOf(r.Response))
			}
			// Sent again alone: a PATCH of members applied twice changes
			// nothing more.
			if err := d.patchGroup(ctx, id, chunk[i].Data); err != nil {
				return err
			}
		}
		for _, op := range chunk[len(br.Operations):] {
			// Left out of the answer (the service stopped early): alone.
			if err := d.patchGroup(ctx, id, op.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

// createGroup posts a group with its first members. A group of that name
// that exists (created by a run stopped before it recorded the id) is
// found and used.
func (d *Directory) createGroup(ctx context.Context, name string, members []string) (string, error) {
	values := make([]map[string]any, len(members))
	for i, m := range members {
		values[i] = map[string]any{"value": m}
	}
	body := map[string]any{"schemas": []any{coreGroupSchema}, "displayName": name, "externalId": d.opts.MarkerValue, "members": values}
	resp, err := d.c.do(ctx, http.MethodPost, "/Groups", nil, body)
	if err != nil {
		return "", err
	}
	if resp.status == http.StatusConflict {
		var id string
		_, _, err := d.pageOf(ctx, "/Groups", "displayName eq "+quote(name), pageSize, func(r map[string]any) error {
			id = str(r["id"])
			return nil
		})
		if err != nil || id == "" {
			return "", groupResult("create a group", resp.status, resp.scimType())
		}
		return id, nil
	}
	if err := groupResult("create a group", resp.status, resp.scimType()); err != nil {
		return "", err
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := decode(resp, &created); err != nil || created.ID == "" {
		return "", failure.Errorf(v1alpha1.ReasonDirectoryError, "POST /Groups: the answer has no id")
	}
	return created.ID, nil
}

// groupResult is nil for a 2xx status; otherwise the error of a refused
// group change: a *directory.ChangeError named by status and scimType only
// (the server's detail may quote values), or an error of the service as
// a whole (credentials, outage).
func groupResult(what string, status int, scimType string) error {
	switch {
	case ok2xx(status):
		return nil
	case status == http.StatusNotFound:
		return &directory.ChangeError{Msg: what + ": the group no longer exists (HTTP 404)"}
	}
	res, err := rowResult(what, status, scimType)
	if err != nil {
		return err
	}
	return res.Err
}
