package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

func TestPlanning(t *testing.T) {
	full, delta := v1alpha1.ModeFull, v1alpha1.ModeDelta
	ignore, deact, del := v1alpha1.MissingIgnore, v1alpha1.MissingDeactivate, v1alpha1.MissingDelete
	status := &v1alpha1.StatusColumn{Column: "status", DeactivateValues: []string{"inactive"}, DeleteValues: []string{"deleted"}}
	base := func() []directory.User {
		return []directory.User{user("a", "a@x", "Dev"), user("b", "b@x", "Ops"), user("c", "c@x", "QA"), user("d", "d@x", "PM")}
	}
	cases := []struct {
		name    string
		mode    v1alpha1.ImportMode
		missing v1alpha1.MissingUsersPolicy
		status  *v1alpha1.StatusColumn
		users   []directory.User
		file    string
		want    Counts
		lines   []int64  // lines with errors
		after   []string // directory after the import
		// changed attributes of the update samples, by identity
		updated map[string][]string
	}{{
		name: "full: create, update only what changed, unchanged, ignore missing",
		mode: full, missing: ignore, users: base(),
		file:    file("a,a@x,Dev,", "b,b@x,Lead,", "c,c2@x,QA2,", "e,e@x,New,"),
		want:    Counts{Rows: 4, ChangeCounts: v1alpha1.ChangeCounts{Created: 1, Updated: 2, Unchanged: 1}},
		updated: map[string][]string{"b": {"title"}, "c": {"mail", "title"}},
		after: []string{
			"a active=true mail=[a@x] title=[Dev] managed=true",
			"b active=true mail=[b@x] title=[Lead] managed=true",
			"c active=true mail=[c2@x] title=[QA2] managed=true",
			"d active=true mail=[d@x] title=[PM] managed=true",
			"e active=true mail=[e@x] title=[New] managed=true",
		},
	}, {
		name: "full: deactivate missing, reactivate listed, empty value clears",
		mode: full, missing: deact, users: append(base(), inactive(user("f", "f@x", "Old"))),
		file:    file("a,a@x,Dev,", "b,b@x,,", "c,c@x,QA,", "f,f@x,Old,"),
		want:    Counts{Rows: 4, ChangeCounts: v1alpha1.ChangeCounts{Updated: 2, Unchanged: 2, Deactivated: 1}},
		updated: map[string][]string{"b": {"title"}, "f": nil},
		after: []string{
			"a active=true mail=[a@x] title=[Dev] managed=true",
			"b active=true mail=[b@x] title=[] managed=true",
			"c active=true mail=[c@x] title=[QA] managed=true",
			"d active=false mail=[d@x] title=[PM] managed=true",
			"f active=true mail=[f@x] title=[Old] managed=true",
		},
	}, {
		name: "full: delete missing, inactive ones too; unmanaged users untouched",
		mode: full, missing: del, users: append(base(), inactive(user("f", "f@x", "Old")), unmanaged(user("z", "z@x", "Ext"))),
		file: file("a,a@x,Dev,", "b,b@x,Ops,", "c,c@x,QA,"),
		want: Counts{Rows: 3, ChangeCounts: v1alpha1.ChangeCounts{Unchanged: 3, Deleted: 2}},
		after: []string{
			"a active=true mail=[a@x] title=[Dev] managed=true",
			"b active=true mail=[b@x] title=[Ops] managed=true",
			"c active=true mail=[c@x] title=[QA] managed=true",
			"z active=true mail=[z@x] title=[Ext] managed=false",
		},
	}, {
		name: "full: errors, duplicates and unmanaged identities are errors on their line",
		mode: full, missing: ignore, users: append(base(), unmanaged(user("z", "z@x", "Ext"))),
		// line 2 ok, 3 empty identity, 4 duplicate of a, 5 new, 6 duplicate of new, 7 too few fields, 8 unmanaged
		file:  file("a,a@x,Dev,", ",x@x,T,", "a,a@x,Dev,", "n,n@x,N,", "n,n@x,N,", "q,q@x", "z,z@x,Ext,"),
		want:  Counts{Rows: 7, ChangeCounts: v1alpha1.ChangeCounts{Created: 1, Unchanged: 1, Failed: 5}},
		lines: []int64{3, 4, 6, 7, 8},
		after: []string{
			"a active=true mail=[a@x] title=[Dev] managed=true",
			"b active=true mail=[b@x] title=[Ops] managed=true",
			"c active=true mail=[c@x] title=[QA] managed=true",
			"d active=true mail=[d@x] title=[PM] managed=true",
			"n active=true mail=[n@x] title=[N] managed=true",
			"z active=true mail=[z@x] title=[Ext] managed=false",
		},
	}, {
		name: "delta: create, update, unchanged, reactivate; missing users untouched",
		mode: delta, missing: ignore, users: append(base(), inactive(user("f", "f@x", "Old"))),
		file:    file("a,a@x,Dev,", "b,b@x,Lead,", "e,e@x,New,", "f,f@x,Old,"),
		want:    Counts{Rows: 4, ChangeCounts: v1alpha1.ChangeCounts{Created: 1, Updated: 2, Unchanged: 1}},
		updated: map[string][]string{"b": {"title"}, "f": nil},
		after: []string{
			"a active=true mail=[a@x] title=[Dev] managed=true",
			"b active=true mail=[b@x] title=[Lead] managed=true",
			"c active=true mail=[c@x] title=[QA] managed=true",
			"d active=true mail=[d@x] title=[PM] managed=true",
			"e active=true mail=[e@x] title=[New] managed=true",
			"f active=true mail=[f@x] title=[Old] managed=true",
		},
	}, {
		name: "delta: status column deactivates and deletes, case-insensitively; duplicates and unmanaged are errors",
		mode: delta, missing: ignore, status: status, users: append(base(), unmanaged(user("z", "z@x", "Ext"))),
		file:  file("a,a@x,Dev,INACTIVE", "b,b@x,Ops, Deleted", "c,c@x,QA,active", "x,x@x,X,inactive", "c,c@x,QA,", "z,z@x,Ext,"),
		want:  Counts{Rows: 6, ChangeCounts: v1alpha1.ChangeCounts{Deactivated: 1, Deleted: 1, Unchanged: 2, Failed: 2}},
		lines: []int64{6, 7},
		after: []string{
			"a active=false mail=[a@x] title=[Dev] managed=true",
			"c active=true mail=[c@x] title=[QA] managed=true",
			"d active=true mail=[d@x] title=[PM] managed=true",
			"z active=true mail=[z@x] title=[Ext] managed=false",
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.mode, tc.missing)
			cfg.StatusColumn = tc.status
			cfg.MaxErrorPercent = nil
			cfg.MaxDeprovisionPercent = nil

			d := seed(tc.users...)
			preview, prec, err := runOnce(t, d, cfg, tc.file, true)
			if err != nil {
				t.Fatalf("preview: %v", err)
			}
			if w := d.Stats().Writes; w != 0 {
				t.Fatalf("a preview wrote %d changes", w)
			}
			res, rec, err := runOnce(t, d, cfg, tc.file, false)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if preview.Counts != tc.want {
				t.Errorf("preview counts %+v, want %+v", preview.Counts, tc.want)
			}
			if res.Counts != tc.want {
				t.Errorf("import counts %+v, want %+v", res.Counts, tc.want)
			}
			if got := prec.errorLines(); !slices.Equal(got, tc.lines) {
				t.Errorf("preview error lines %v, want %v", got, tc.lines)
			}
			if got := rec.errorLines(); !slices.Equal(got, tc.lines) {
				t.Errorf("import error lines %v, want %v", got, tc.lines)
			}
			if got := state(d); !slices.Equal(got, tc.after) {
				t.Errorf("directory after the import:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.after, "\n"))
			}
			for _, s := range preview.Samples {
				if s.Op != directory.OpUpdate {
					continue
				}
				want, ok := tc.updated[s.Identity]
				if !ok {
					t.Errorf("unexpected update of %s", s.Identity)
				}
				if !slices.Equal(s.Attributes, want) {
					t.Errorf("update of %s changes %v, want only %v", s.Identity, s.Attributes, want)
				}
			}
			// The import made the directory match the file: running it
			// again changes nothing.
			again, _, err := runOnce(t, d, cfg, tc.file, true)
			if err != nil {
				t.Fatal(err)
			}
			if c := again.Counts; c.Created+c.Updated+c.Deactivated+c.Deleted != 0 {
				t.Errorf("a second run still plans changes: %+v", c)
			}
		})
	}
}

func TestErrorMessagesCarryNoValues(t *testing.T) {
	cfg := testConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	cfg.Mapping[1].Check = "Email"
	cfg.MaxErrorPercent = nil
	d := seed(user("secret-a", "a@x", "Dev"))
	_, rec, err := runOnce(t, d, cfg, file("secret-a,secret-a@x,Dev,", "secret-b,not-an-email-secret,Dev,", "secret-a,secret-a@x,Dev,"), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.errors) != 2 {
		t.Fatalf("want 2 errors, got %v", rec.errors)
	}
	for _, e := range rec.errors {
		if strings.Contains(e.Msg, "secret") {
			t.Errorf("line %d: message quotes a value: %q", e.Line, e.Msg)
		}
	}
}

func TestFullListFailureIsAnError(t *testing.T) {
	d := seed(user("a", "a@x", "Dev"))
	d.FailList(errors.New("connection reset"))
	_, _, err := runOnce(t, d, testConfig(v1alpha1.ModeFull, v1alpha1.MissingDeactivate), file("b,b@x,Dev,"), false)
	if err == nil {
		t.Fatal("a failed List must fail the import")
	}
	if w := d.Stats().Writes; w != 0 {
		t.Fatalf("wrote %d changes after a failed List", w)
	}
}

func TestMappingMustMapTheDirectoryIdentity(t *testing.T) {
	cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.Directory.IdentityAttribute = "mail"
	_, _, err := runOnce(t, seed(), cfg, file("a,a@x,Dev,"), true)
	if err == nil || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("want an identity mismatch error, got %v", err)
	}
}
