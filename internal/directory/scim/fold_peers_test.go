package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

// The fold the provider reports for userName finds two spellings equal
// wherever the server does, in its filter or in its unique userName
// (lowered as JavaScript lowers: "ΟΔΟΣ" is "οδος"): where it tells apart
// what the server finds equal, a full import takes the line for a create
// the server refuses, and deprovisions the user it names.
func TestUserNameFoldAgreesWithTheServer(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{})
	d := newDir(t, &v1alpha1.SCIMDirectory{URL: s.URL}, defaultOpts(), nil)
	ctx := context.Background()
	fold, err := d.IdentityFold(ctx)
	if err != nil || fold == nil {
		t.Fatalf("IdentityFold: %v (nil: %v)", err, fold == nil)
	}
	for _, p := range [][2]string{
		{"ann.lee", "ANN.LEE"},
		{"zoë", "ZOË"},
		{"ann lee", "ann  lee"},
		{"ann lee", "ann\u00a0lee"},
		{"jose\u0301", "jos\u00e9"},
		{"straße", "STRASSE"},
		{"ΟΔΟΣ", "οδος"},
		{"οδοσ", "οδος"},
		{"İan", "i\u0307an"},
		{"İan", "ian"},
		{"ıan", "ian"},
		{"ǅ", "ǆ"},
		{"\u212aim", "kim"},
	} {
		held, asked := p[0], p[1]
		res, err := d.Apply(ctx, []directory.Change{{Op: directory.OpCreate, Line: 2, Identity: held,
			Attributes: directory.Attributes{"userName": {held}, orgMarker: {marker}}}})
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatalf("create %q: %v", held, err)
		}
		server := filterFinds(t, s.URL, `userName eq "`+asked+`"`) || taken(t, s.URL, asked)
		if ours := fold(held) == fold(asked); server && !ours {
			t.Errorf("held %q, asked %q: the server finds them equal, the fold does not", held, asked)
		} else if ours != server {
			t.Logf("held %q, asked %q: the fold finds them equal, the server does not", held, asked)
		}
		if res, err := d.Apply(ctx, []directory.Change{{Op: directory.OpDelete, Line: 2, Identity: held, ID: res[0].ID}}); err != nil || res[0].Err != nil {
			t.Fatalf("delete %q: %v %v", held, err, res)
		}
	}
}

// taken tells whether the server refuses a user named userName as one
// it has.
func taken(t *testing.T, base, userName string) bool {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": userName})
	resp, err := http.Post(base+"/Users", "application/scim+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusConflict:
		return true
	case http.StatusCreated:
		var u struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodDelete, base+"/Users/"+u.ID, nil)
		del, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		del.Body.Close()
		return false
	}
	t.Fatalf("POST /Users: %s", resp.Status)
	return false
}

// filterFinds tells whether a GET of the server's users with filter
// finds one.
func filterFinds(t *testing.T, base, filter string) bool {
	t.Helper()
	resp, err := http.Get(base + "/Users?filter=" + url.QueryEscape(filter))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ TotalResults int }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /Users?filter=%s: %s %v", filter, resp.Status, err)
	}
	if list.TotalResults > 1 {
		t.Fatalf("filter %s found %s users", filter, strconv.Itoa(list.TotalResults))
	}
	return list.TotalResults == 1
}
