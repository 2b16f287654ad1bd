package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// A full import into a directory whose identities ignore case (LDAP,
// SCIM's userName) reads a row that spells its user's identity in other
// case as naming that user: the row updates it, a second row naming it is
// a duplicate, and nobody is created or deprovisioned. PostgreSQL compares
// identities as its column does, exactly: there the spellings are two
// users.
func TestPeersAnIdentityInOtherCaseNamesItsUser(t *testing.T) {
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			var users []seedUser
			for _, id := range []string{"u0000", "u0001", "u0002"} {
				users = append(users, seedUser{id: id, mail: id + "@corp.example", title: "Dev", active: true, managed: true})
			}
			content := "id,mail,title,status\n" +
				"U0000,u0000@corp.example,Lead,\n" + // another case, another title
				"u0001,u0001@corp.example,Dev,\n" +
				"U0001,u0001@corp.example,Ops,\n" + // the same user again
				"u0002,u0002@corp.example,Dev,\n"
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions(p.identity, p.marker, true), 2)
			managed, all := p.start(t, users)

			preview, _, err := runOnce(t, managed, cfg, content, true)
			if err != nil {
				t.Fatal(err)
			}
			res, rec, err := runOnce(t, managed, cfg, content, false)
			if err != nil {
				t.Fatal(err)
			}
			if preview.Counts.ChangeCounts != res.Counts.ChangeCounts {
				t.Errorf("preview %+v, import %+v", preview.Counts.ChangeCounts, res.Counts.ChangeCounts)
			}
			state := peerState(t, all, p)
			if p.name == "PostgreSQL" {
				want := v1alpha1.ChangeCounts{Created: 2, Unchanged: 2, Deleted: 1}
				if res.Counts.ChangeCounts != want || len(state) != 4 || !strings.HasPrefix(state[0], "U0000 ") || !strings.HasPrefix(state[1], "U0001 ") {
					t.Fatalf("counts %+v, want %+v; state:\n%s", res.Counts.ChangeCounts, want, strings.Join(state, "\n"))
				}
				return
			}
			want := v1alpha1.ChangeCounts{Updated: 1, Unchanged: 2, Failed: 1}
			if res.Counts.ChangeCounts != want {
				t.Errorf("counts %+v, want %+v", res.Counts.ChangeCounts, want)
			}
			if len(rec.errors) != 1 || rec.errors[0].Line != 4 || !strings.Contains(rec.errors[0].Msg, "duplicate identity") {
				t.Errorf("want line 4 a duplicate, got %+v", rec.errors)
			}
			wantState := []string{
				"u0000 active=true managed=true mail=[u0000@corp.example] title=[Lead]",
				"u0001 active=true managed=true mail=[u0001@corp.example] title=[Dev]",
				"u0002 active=true managed=true mail=[u0002@corp.example] title=[Dev]",
			}
			if !slices.Equal(state, wantState) {
				t.Fatalf("state\n%s\nwant\n%s", strings.Join(state, "\n"), strings.Join(wantState, "\n"))
			}
		})
	}
}

// In a delta import too, a second line that spells the same user in
// other case is a duplicate, decided by the first; PostgreSQL's are two
// users.
func TestPeersDeltaDuplicateInOtherCase(t *testing.T) {
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			users := []seedUser{{id: "u0000", mail: "u0000@corp.example", title: "Dev", active: true, managed: true}}
			content := "id,mail,title,status\n" +
				"u0000,u0000@corp.example,Lead,\n" +
				"U0000,u0000@corp.example,Ops,deleted\n"
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions(p.identity, p.marker, true), 3)
			managed, all := p.start(t, users)
			res, rec, err := runOnce(t, managed, cfg, content, false)
			if err != nil {
				t.Fatal(err)
			}
			state := peerState(t, all, p)
			if p.name == "PostgreSQL" {
				// U0000 is nobody: deleting it changes nothing.
				if res.Counts.Updated != 1 || res.Counts.Failed != 0 || len(state) != 1 || !strings.Contains(state[0], "title=[Lead]") {
					t.Fatalf("counts %+v; state %v", res.Counts.ChangeCounts, state)
				}
				return
			}
			if res.Counts.ChangeCounts != (v1alpha1.ChangeCounts{Updated: 1, Failed: 1}) {
				t.Errorf("counts %+v, want 1 updated and 1 failed", res.Counts.ChangeCounts)
			}
			if len(rec.errors) != 1 || rec.errors[0].Line != 3 || !strings.Contains(rec.errors[0].Msg, "duplicate identity") {
				t.Errorf("want line 3 a duplicate, got %+v", rec.errors)
			}
			if len(state) != 1 || state[0] != "u0000 active=true managed=true mail=[u0000@corp.example] title=[Lead]" {
				t.Fatalf("state %v", state)
			}
		})
	}
}

// Groups and managers: a row, or a manager entry, that spells a user in
// other case keeps that user's memberships and manager as they are.
func TestPeersGroupsKeepAUserSpelledInOtherCase(t *testing.T) {
	for _, p := range groupPeers() {
		if p.name == "PostgreSQL" || p.name == "SQLite" {
			continue // identities compare exactly
		}
		t.Run(p.name, func(t *testing.T) {
			d, _ := p.start(t)
			cfg := groupPeerConfig(p, 2)
			cfg.MissingUsers = v1alpha1.MissingDelete
			first := "id,title,dept,mgr\nann,Dev,eng,\nbob,Dev,eng|ops,ann\n"
			if _, _, err := runOnce(t, d, cfg, first, false); err != nil {
				t.Fatal(err)
			}
			before := peerRelations(t, d, p)
			res, _, err := runOnce(t, d, cfg, "id,title,dept,mgr\nANN,Dev,eng,\nBob,Dev,eng|ops,Ann\n", false)
			if err != nil {
				t.Fatal(err)
			}
			if res.Counts.ChangeCounts != (v1alpha1.ChangeCounts{Unchanged: 2}) || res.Counts.Groups != (v1alpha1.GroupCounts{}) {
				t.Errorf("counts %+v, groups %+v; want two unchanged users and nothing else", res.Counts.ChangeCounts, res.Counts.Groups)
			}
			if after := peerRelations(t, d, p); !slices.Equal(after, before) {
				t.Fatalf("relations\n%s\nwant\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
			}
		})
	}
}

// The same when the import is interrupted again and again, in every step,
// and resumed: the import ends as an uninterrupted one of the file
// spelled as the directory spells its users.
func TestPeersResumedGroupsKeepAUserSpelledInOtherCase(t *testing.T) {
	for _, p := range groupPeers() {
		if p.name != "LDAP groupOfNames" && p.name != "SCIM" {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			cfg := groupPeerConfig(p, 1) // many checkpoints
			cfg.MissingUsers = v1alpha1.MissingDelete
			cfg.ApprovedMembershipRemovals = ptr(int64(1 << 30))
			lower := func(i int) string { return fmt.Sprintf("u%02d", i) }
			mixed := func(i int) string {
				if i%2 == 0 {
					return fmt.Sprintf("U%02d", i)
				}
				return lower(i)
			}
			// shift moves every user to another team and manager.
			file := func(spell func(i int) string, shift int) string {
				rows := []string{"id,title,dept,mgr"}
				for i := range 12 {
					rows = append(rows, fmt.Sprintf("%s,Dev,eng|team%d,%s", spell(i), (i+shift)%3, spell((i+shift+1)%12)))
				}
				return strings.Join(rows, "\n") + "\n"
			}
			ref, _ := p.start(t)
			d, _ := p.start(t)
			for _, dir := range []directory.Directory{ref, d} {
				if _, _, err := runOnce(t, dir, cfg, file(lower, 0), false); err != nil {
					t.Fatal(err)
				}
			}
			want, _, err := runOnce(t, ref, cfg, file(lower, 1), false)
			if err != nil {
				t.Fatal(err)
			}
			res, steps := importInterrupted(t, d, cfg, file(mixed, 1), rand.New(rand.NewPCG(3, 4)), 3)
			if steps[v1alpha1.StepGroups] == 0 || steps[v1alpha1.StepManagers] == 0 {
				t.Fatalf("not interrupted in the Groups and Managers steps: %v", steps)
			}
			if res.Counts.Created+res.Counts.Deleted != 0 || res.Counts.Groups != want.Counts.Groups {
				t.Errorf("resumed import counts %+v, want those of the uninterrupted one %+v", res.Counts, want.Counts)
			}
			if got, w := peerRelations(t, d, p), peerRelations(t, ref, p); !slices.Equal(got, w) {
				t.Fatalf("resumed:\n%s\nuninterrupted:\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
		})
	}
}

// Blanks around an identity are not part of it, and its decomposed form
// is the same text, in every directory: a full import reads " u0000 " as
// u0000, which stays as it is, and updates the user whose "ë" is one
// character from a line that spells it "e" and a combining diaeresis;
// it creates no user of the other spelling, and deprovisions nobody.
func TestPeersAnIdentityWithBlanksOrDecomposed(t *testing.T) {
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			users := []seedUser{
				{id: "u0000", mail: "u0000@corp.example", title: "Dev", active: true, managed: true},
				{id: "u0001\u00eb", mail: "u0001@corp.example", title: "Dev", active: true, managed: true},
			}
			// u0001 is spelled decomposed: "e" and a combining diaeresis.
			content := "id,mail,title,status\n u0000 ,u0000@corp.example,Dev,\nu0001e\u0308\t,u0001@corp.example,Lead,\n"
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions(p.identity, p.marker, true), 2)
			managed, all := p.start(t, users)
			importCleanly(t, managed, all, p, cfg, content, v1alpha1.ChangeCounts{Unchanged: 1, Updated: 1}, []string{
				"u0000 active=true managed=true mail=[u0000@corp.example] title=[Dev]",
				"u0001\u00eb active=true managed=true mail=[u0001@corp.example] title=[Lead]",
			})
		})
	}
}
