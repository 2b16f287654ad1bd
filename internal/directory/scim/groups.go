package scim

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// Groups are the service's /Groups, named by displayName. A group the
// import creates carries the marker value in externalId. Members are
// added and removed with PATCH, at most spec.groups.maxPatchOperations
// members a request: a change of ten thousand members is a hundred
// requests with the default, each of which the service applies whole, so
// a change applied again after an interruption adds and removes nothing
// twice.

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

func groupPath(id string) string { return "/Groups/" + url.PathEscape(id) }

// ListGroups reads every group with its members.
func (d *Directory) ListGroups(ctx context.Context, fn func(directory.Group) error) error {
	if !d.HasGroups() {
		return directory.Errorf(v1alpha1.ReasonInvalidConfig, "spec.scim.groups is not set")
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
		return "", directory.Errorf(v1alpha1.ReasonInvalidConfig, "spec.scim.groups is not set")
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
	for len(add) > 0 || len(ch.Remove) > 0 {
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
		for n < d.maxPatchMembers && len(ch.Remove) > 0 {
			ops = append(ops, map[string]any{"op": "remove", "path": "members[value eq " + quote(ch.Remove[0]) + "]"})
			ch.Remove, n = ch.Remove[1:], n+1
		}
		body := map[string]any{"schemas": []any{patchOpSchema}, "Operations": ops}
		resp, err := d.c.do(ctx, http.MethodPatch, groupPath(id), nil, body)
		if err != nil {
			return id, err
		}
		if !ok2xx(resp.status) {
			_, err := rowResult("change the members of a group", resp.status, resp.scimType())
			if err != nil {
				return id, err
			}
			return id, groupError("change the members of a group", resp)
		}
	}
	return id, nil
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
			return "", groupError("create a group", resp)
		}
		return id, nil
	}
	if !ok2xx(resp.status) {
		if _, err := rowResult("create a group", resp.status, resp.scimType()); err != nil {
			return "", err
		}
		return "", groupError("create a group", resp)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := decode(resp, &created); err != nil || created.ID == "" {
		return "", directory.Errorf(v1alpha1.ReasonDirectoryError, "POST /Groups: the answer has no id")
	}
	return created.ID, nil
}

// groupError is a refused group change, named by status and scimType
// only: the server's detail may quote values.
func groupError(what string, r *response) error {
	msg := fmt.Sprintf("%s: refused with HTTP %d", what, r.status)
	if t := r.scimType(); t != "" && len(t) <= 32 && isKeyword(t) {
		msg += " (" + t + ")"
	}
	return &directory.ChangeError{Msg: msg}
}
