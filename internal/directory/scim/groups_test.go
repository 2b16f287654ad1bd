package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

// groupPatches is the number of group PATCH requests the server accepted.
func groupPatches(t *testing.T, s *scimserver.Server) int {
	t.Helper()
	patches, _ := groupRequests(t, s)
	return patches
}

// groupRequests is the number of group PATCH and of /Bulk requests the
// server received.
func groupRequests(t *testing.T, s *scimserver.Server) (int, int) {
	t.Helper()
	resp, err := http.Get(s.URL + "/test/group-patches")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Patches, Bulks int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Patches, out.Bulks
}

func listGroups(t *testing.T, d *Directory) map[string]directory.Group {
	t.Helper()
	out := map[string]directory.Group{}
	if err := d.ListGroups(context.Background(), func(g directory.Group) error {
		out[g.Name] = g
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func memberIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("member-%05d", i))
	}
	return out
}

// A group of 10,000 members is created and changed in PATCH requests of at
// most 100 members, which the server enforces.
func TestLargeGroupChangesInChunksTheServerAccepts(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token, PatchMaxMembers: 100, NoBulk: true})
	spec := bearerSpec(s.URL)
	spec.Groups = &v1alpha1.SCIMGroups{}
	d := newDir(t, spec, defaultOpts(), bearerSecrets)
	ctx := context.Background()

	id, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "everyone", Add: memberIDs(0, 10000)})
	if err != nil {
		t.Fatal(err)
	}
	if n := groupPatches(t, s); n != 99 { // the first 100 come with the POST
		t.Fatalf("%d PATCH requests for 9,900 members, want 99", n)
	}
	g := listGroups(t, d)["everyone"]
	if !g.Managed || g.ID != id || len(g.Members) != 10000 {
		t.Fatalf("group %s managed=%v with %d members", g.ID, g.Managed, len(g.Members))
	}

	// 250 leave, 150 join: four requests of at most 100 changes.
	remove := memberIDs(1000, 1250)
	if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "everyone", ID: id, Add: memberIDs(10000, 10150), Remove: remove}); err != nil {
		t.Fatal(err)
	}
	if n := groupPatches(t, s); n != 99+4 {
		t.Fatalf("%d PATCH requests, want %d", n, 99+4)
	}
	got := listGroups(t, d)["everyone"].Members
	want := append(append(memberIDs(0, 1000), memberIDs(1250, 10000)...), memberIDs(10000, 10150)...)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%d members after the change, want %d", len(got), len(want))
	}

	// Applied again (a resumed import): nothing changes.
	if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "everyone", ID: id, Add: memberIDs(10000, 10150), Remove: remove}); err != nil {
		t.Fatal(err)
	}
	again := listGroups(t, d)["everyone"].Members
	slices.Sort(again)
	if !slices.Equal(again, want) {
		t.Fatalf("a repeated change left %d members, want %d", len(again), len(want))
	}

	// A provider allowed larger requests is refused by this server, with
	// a message that names no member.
	spec.Groups.MaxPatchOperations = 1000
	big := newDir(t, spec, defaultOpts(), bearerSecrets)
	_, err = big.ApplyGroup(ctx, directory.GroupChange{Name: "everyone", ID: id, Add: memberIDs(20000, 20500)})
	if !directory.IsChangeError(err) || !strings.Contains(err.Error(), "400") || strings.Contains(err.Error(), "member-") {
		t.Fatalf("want a refusal naming the status, got %v", err)
	}
}

// A group created by a run that stopped before recording it is found by
// name and used.
func TestCreatingAGroupThatExistsUsesIt(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	spec := bearerSpec(s.URL)
	spec.Groups = &v1alpha1.SCIMGroups{}
	d := newDir(t, spec, defaultOpts(), bearerSecrets)
	ctx := context.Background()
	id, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "eng", Add: memberIDs(0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	again, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "eng", Add: memberIDs(0, 5)})
	if err != nil || again != id {
		t.Fatalf("got %q, %v; want the group %q", again, err, id)
	}
	if n := len(listGroups(t, d)["eng"].Members); n != 3 {
		t.Fatalf("%d members", n)
	}
}

// A service that offers /Bulk gets the PATCHes of a group in /Bulk
// requests within its operation limit.
func TestGroupPatchesGoInBulkWhenOffered(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token, BulkMaxOperations: 3})
	spec := bearerSpec(s.URL)
	spec.Groups = &v1alpha1.SCIMGroups{MaxPatchOperations: 2}
	d := newDir(t, spec, defaultOpts(), bearerSecrets)
	ctx := context.Background()
	id, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "eng", Add: memberIDs(0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	// 10 added and 2 removed: 6 PATCHes of 2 members, in 2 requests of 3.
	if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "eng", ID: id, Add: memberIDs(2, 12), Remove: memberIDs(0, 2)}); err != nil {
		t.Fatal(err)
	}
	if patches, bulks := groupRequests(t, s); patches != 0 || bulks != 2 {
		t.Fatalf("%d PATCH and %d /Bulk requests, want 0 and 2", patches, bulks)
	}
	got := listGroups(t, d)["eng"].Members
	slices.Sort(got)
	if want := memberIDs(2, 12); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
}
