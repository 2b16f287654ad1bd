package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/retry"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

const (
	orgMarker = enterprisePrefx + "organization"
	marker    = "user-import-operator"
	token     = "test-token"
)

// secretsOf serves Secrets from a map keyed "name/key".
func secretsOf(m map[string]string) keyread.KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		v, ok := m[name+"/"+key]
		if !ok {
			return nil, fmt.Errorf("not found")
		}
		return []byte(v), nil
	}
}

func defaultOpts() directory.Options {
	return directory.Options{
		IdentityAttribute: "userName", ManagedOnly: true,
		MarkerAttribute: orgMarker, MarkerValue: marker,
		Concurrency: 4, MaxRetries: 3,
	}
}

func bearerSpec(url string) *v1alpha1.SCIMDirectory {
	return &v1alpha1.SCIMDirectory{URL: url, Auth: v1alpha1.SCIMAuth{BearerToken: &v1alpha1.SecretKeyRef{Name: "scim", Key: "token"}}}
}

var bearerSecrets = secretsOf(map[string]string{"scim/token": token})

func newDir(t testing.TB, spec *v1alpha1.SCIMDirectory, opts directory.Options, secrets keyread.KeyReader) *Directory {
	t.Helper()
	d, err := New(context.Background(), spec, opts, secrets)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// fullAttributes is a row that uses every attribute of the vocabulary.
func fullAttributes(name string) directory.Attributes {
	return directory.Attributes{
		"userName":                         {name},
		"externalId":                       {"ext-" + name},
		"displayName":                      {"Display " + name},
		"nickName":                         {"nick"},
		"title":                            {"Engineer"},
		"userType":                         {"Employee"},
		"preferredLanguage":                {"de-DE"},
		"locale":                           {"de-DE"},
		"timezone":                         {"Europe/Berlin"},
		"name.givenName":                   {"Given"},
		"name.familyName":                  {"Family"},
		"name.middleName":                  {"Middle"},
		"name.formatted":                   {"Given Middle Family"},
		"emails":                           {name + "@example.com", name + ".alt@example.com"},
		"phoneNumbers":                     {"+49 30 1234"},
		enterprisePrefx + "employeeNumber": {"E-1"},
		enterprisePrefx + "costCenter":     {"CC-1"},
		enterprisePrefx + "division":       {"Div"},
		enterprisePrefx + "department":     {"Dept"},
		enterprisePrefx + "manager":        {"manager-id-1"},
		orgMarker:                          {marker},
	}
}

func names(a directory.Attributes) []string {
	out := make([]string, 0, len(a))
	for k := range a {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustApply(t testing.TB, d *Directory, changes ...directory.Change) []directory.Result {
	t.Helper()
	res, err := d.Apply(context.Background(), changes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(changes) {
		t.Fatalf("Apply returned %d results for %d changes", len(res), len(changes))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("change %d (%v): %v", i, changes[i].Op, r.Err)
		}
	}
	return res
}

func lookupOne(t testing.TB, d *Directory, identity string, attrs []string) (directory.User, bool) {
	t.Helper()
	m, err := d.Lookup(context.Background(), []string{identity}, attrs)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	u, ok := m[identity]
	return u, ok
}

func TestCheckReportsCapabilities(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token, BulkMaxOperations: 17, BulkMaxPayload: 123456})
	d := newDir(t, bearerSpec(s.URL), defaultOpts(), bearerSecrets)
	caps, err := d.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := directory.Capabilities{Bulk: true, MaxBulkOperations: 17, MaxBulkPayloadBytes: 123456, Patch: true, Filter: true, PagedSearch: true}
	if caps != want {
		t.Fatalf("caps = %+v, want %+v", caps, want)
	}

	s2 := scimserver.Start(t, scimserver.Options{Token: token, NoBulk: true, NoPatch: true})
	caps, err = newDir(t, bearerSpec(s2.URL), defaultOpts(), bearerSecrets).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if caps.Bulk || caps.Patch || caps.MaxBulkOperations != 0 {
		t.Fatalf("caps = %+v, want no bulk and no patch", caps)
	}
}

func TestCheckReasons(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	ctx := context.Background()

	d := newDir(t, bearerSpec(s.URL), defaultOpts(), secretsOf(map[string]string{"scim/token": "wrong"}))
	if _, err := d.Check(ctx); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonAuthenticationFailed {
		t.Errorf("wrong token: %v, want %s", err, v1alpha1.ReasonAuthenticationFailed)
	}

	if _, err := New(ctx, bearerSpec(s.URL), defaultOpts(), secretsOf(nil)); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSecretNotFound {
		t.Errorf("missing secret: %v, want %s", err, v1alpha1.ReasonSecretNotFound)
	}

	// A port nobody listens on: the server's, after it stopped.
	gone := scimserver.Start(t, scimserver.Options{})
	gone.Stop()
	opts := defaultOpts()
	opts.MaxRetries = 1
	d = newDir(t, &v1alpha1.SCIMDirectory{URL: gone.URL}, opts, bearerSecrets)
	if _, err := d.Check(ctx); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonUnreachable {
		t.Errorf("closed port: %v, want %s", err, v1alpha1.ReasonUnreachable)
	}

	opts.MarkerAttribute = "userImportManagedBy"
	if _, err := New(ctx, bearerSpec(s.URL), opts, bearerSecrets); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonInvalidConfig {
		t.Errorf("unknown marker attribute: %v, want %s", err, v1alpha1.ReasonInvalidConfig)
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token, TLS: true})
	ctx := context.Background()
	spec := bearerSpec(s.URL)
	spec.CABundle = &v1alpha1.SecretKeyRef{Name: "ca", Key: "ca.crt"}
	d := newDir(t, spec, defaultOpts(), secretsOf(map[string]string{"scim/token": token, "ca/ca.crt": string(s.CAPEM)}))
	if _, err := d.Check(ctx); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	d = newDir(t, bearerSpec(s.URL), defaultOpts(), bearerSecrets)
	if _, err := d.Check(ctx); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonTLSError {
		t.Fatalf("without the CA: %v, want %s", err, v1alpha1.ReasonTLSError)
	}
}

func TestBasicAndOAuth2(t *testing.T) {
	ctx := context.Background()
	s := scimserver.Start(t, scimserver.Options{BasicUser: "svc", BasicPassword: "p:w"})
	spec := &v1alpha1.SCIMDirectory{URL: s.URL, Auth: v1alpha1.SCIMAuth{Basic: &v1alpha1.LocalObjectReference{Name: "b"}}}
	d := newDir(t, spec, defaultOpts(), secretsOf(map[string]string{"b/username": "svc", "b/password": "p:w"}))
	if _, err := d.Check(ctx); err != nil {
		t.Fatalf("basic: %v", err)
	}
	d = newDir(t, spec, defaultOpts(), secretsOf(map[string]string{"b/username": "svc", "b/password": "nope"}))
	if _, err := d.Check(ctx); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonAuthenticationFailed {
		t.Fatalf("basic with a wrong password: %v", err)
	}

	o := scimserver.Start(t, scimserver.Options{OAuthClientID: "client", OAuthClientSecret: "s3cret"})
	spec = &v1alpha1.SCIMDirectory{URL: o.URL, Auth: v1alpha1.SCIMAuth{OAuth2: &v1alpha1.OAuth2ClientCredentials{
		TokenURL: o.TokenURL, ClientSecretRef: v1alpha1.LocalObjectReference{Name: "oc"}}}}
	d = newDir(t, spec, defaultOpts(), secretsOf(map[string]string{"oc/clientID": "client", "oc/clientSecret": "s3cret"}))
	if _, err := d.Check(ctx); err != nil {
		t.Fatalf("oauth2: %v", err)
	}
	res := mustApply(t, d, directory.Change{Op: directory.OpCreate, Identity: "o1", Attributes: directory.Attributes{"userName": {"o1"}}})
	if res[0].ID == "" {
		t.Fatal("oauth2 create returned no id")
	}
	d = newDir(t, spec, defaultOpts(), secretsOf(map[string]string{"oc/clientID": "client", "oc/clientSecret": "wrong"}))
	_, err := d.Check(ctx)
	if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonAuthenticationFailed {
		t.Fatalf("oauth2 with a wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error quotes the secret: %v", err)
	}
}

// TestLifecycle creates, updates one attribute, deactivates, reactivates
// and deletes a user, and checks what went over the wire.
func TestLifecycle(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			s := scimserver.Start(t, scimserver.Options{Token: token})
			p := scimserver.NewProxy(t, s)
			spec := bearerSpec(p.URL)
			spec.DisableBulk = !bulk
			d := newDir(t, spec, defaultOpts(), bearerSecrets)
			attrs := fullAttributes("alice")
			list := names(attrs)

			// Two creates so that bulk, when on, is used.
			res := mustApply(t, d,
				directory.Change{Op: directory.OpCreate, Line: 2, Identity: "alice", Attributes: attrs},
				directory.Change{Op: directory.OpCreate, Line: 3, Identity: "bob", Attributes: directory.Attributes{"userName": {"bob"}, orgMarker: {marker}}})
			id := res[0].ID
			if id == "" || res[1].ID == "" || id == res[1].ID {
				t.Fatalf("ids = %q, %q", id, res[1].ID)
			}
			if bulk != hasRequest(p, "POST", "/Bulk") {
				t.Fatalf("bulk=%v but /Bulk used=%v", bulk, !bulk)
			}

			u, ok := lookupOne(t, d, "alice", list)
			if !ok || u.ID != id || !u.Active || !u.Managed || u.Identity != "alice" {
				t.Fatalf("after create: %+v (found %v)", u, ok)
			}
			if !reflect.DeepEqual(u.Attributes, attrs) {
				t.Fatalf("round trip differs:\n got %v\nwant %v", u.Attributes, attrs)
			}

			p.Reset()
			mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: id,
				Attributes: directory.Attributes{"name.familyName": {"Newname"}}})
			patch := onlyRequest(t, p, "PATCH")
			var msg struct {
				Operations []map[string]any
			}
			if err := json.Unmarshal(patch.Body, &msg); err != nil {
				t.Fatal(err)
			}
			if len(msg.Operations) != 1 || msg.Operations[0]["path"] != "name.familyName" {
				t.Fatalf("PATCH carried %s, want only name.familyName", patch.Body)
			}
			u, _ = lookupOne(t, d, "alice", list)
			want := fullAttributes("alice")
			want["name.familyName"] = []string{"Newname"}
			if !reflect.DeepEqual(u.Attributes, want) {
				t.Fatalf("after update:\n got %v\nwant %v", u.Attributes, want)
			}

			// Removing an attribute and changing a multi-valued one.
			mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: id,
				Attributes: directory.Attributes{"nickName": nil, "emails": {"new@example.com"}, enterprisePrefx + "department": {"D2"}}})
			u, _ = lookupOne(t, d, "alice", list)
			delete(want, "nickName")
			want["emails"] = []string{"new@example.com"}
			want[enterprisePrefx+"department"] = []string{"D2"}
			if !reflect.DeepEqual(u.Attributes, want) {
				t.Fatalf("after second update:\n got %v\nwant %v", u.Attributes, want)
			}

			mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "alice", ID: id},
				directory.Change{Op: directory.OpDeactivate, Identity: "bob", ID: res[1].ID})
			if u, _ = lookupOne(t, d, "alice", list); u.Active {
				t.Fatal("still active after deactivate")
			}
			mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: id, Reactivate: true})
			if u, _ = lookupOne(t, d, "alice", list); !u.Active {
				t.Fatal("not active after reactivate")
			}
			if !reflect.DeepEqual(u.Attributes, want) {
				t.Fatalf("reactivation changed attributes:\n got %v\nwant %v", u.Attributes, want)
			}

			for range 2 { // the second delete finds nothing and is done too
				mustApply(t, d, directory.Change{Op: directory.OpDelete, Identity: "alice", ID: id},
					directory.Change{Op: directory.OpDelete, Identity: "bob", ID: res[1].ID})
			}
			if _, ok := lookupOne(t, d, "alice", nil); ok {
				t.Fatal("alice still there after delete")
			}
		})
	}
}

func TestUpdateWithoutPatchUsesPut(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token, NoPatch: true})
	p := scimserver.NewProxy(t, s)
	d := newDir(t, bearerSpec(p.URL), defaultOpts(), bearerSecrets)
	attrs := fullAttributes("carol")
	res := mustApply(t, d, directory.Change{Op: directory.OpCreate, Identity: "carol", Attributes: attrs})
	p.Reset()
	mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "carol", ID: res[0].ID, Attributes: directory.Attributes{"title": {"Boss"}}},
		directory.Change{Op: directory.OpDeactivate, Identity: "carol", ID: res[0].ID})
	if hasRequest(p, "PATCH", "") {
		t.Fatal("PATCH sent to a server that does not offer it")
	}
	u, _ := lookupOne(t, d, "carol", names(attrs))
	attrs["title"] = []string{"Boss"}
	if u.Active || !reflect.DeepEqual(u.Attributes, attrs) {
		t.Fatalf("after PUT updates: active=%v attrs=%v", u.Active, u.Attributes)
	}
}

func hasRequest(p *scimserver.Proxy, method, path string) bool {
	for _, r := range p.Requests() {
		if r.Method == method && (path == "" || strings.HasPrefix(r.Path, path)) {
			return true
		}
	}
	return false
}

func onlyRequest(t *testing.T, p *scimserver.Proxy, method string) scimserver.Request {
	t.Helper()
	var found []scimserver.Request
	for _, r := range p.Requests() {
		if r.Method == method {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s requests, want 1", len(found), method)
	}
	return found[0]
}

func createChanges(prefix string, n int, managed bool) []directory.Change {
	out := make([]directory.Change, n)
	for i := range out {
		id := fmt.Sprintf("%s%04d", prefix, i)
		a := directory.Attributes{"userName": {id}, "name.givenName": {"G"}}
		if managed {
			a[orgMarker] = []string{marker}
		}
		out[i] = directory.Change{Op: directory.OpCreate, Line: int64(i + 2), Identity: id, Attributes: a}
	}
	return out
}

func TestPaginationLookupAndManagedOnly(t *testing.T) {
	for _, markerAttr := range []string{orgMarker, "userType"} {
		t.Run(markerAttr, func(t *testing.T) {
			s := scimserver.Start(t, scimserver.Options{Token: token, BulkMaxOperations: 40})
			p := scimserver.NewProxy(t, s)
			opts := defaultOpts()
			opts.MarkerAttribute = markerAttr
			d := newDir(t, bearerSpec(p.URL), opts, bearerSecrets)
			ctx := context.Background()

			// 250 managed users (bulk in requests of at most 40) and 30
			// unmanaged ones.
			managed := createChanges("m", 250, false)
			for _, c := range managed {
				c.Attributes[markerAttr] = []string{marker}
			}
			mustApply(t, d, managed...)
			bulks := 0
			for _, r := range p.Requests() {
				if r.Method == "POST" && r.Path == "/Bulk" {
					var br struct{ Operations []any }
					_ = json.Unmarshal(r.Body, &br)
					if len(br.Operations) > 40 {
						t.Fatalf("bulk request with %d operations, limit 40", len(br.Operations))
					}
					bulks++
				}
			}
			if bulks != 7 {
				t.Fatalf("%d bulk requests for 250 creates with maxOperations 40, want 7", bulks)
			}
			unmanaged := scimserver.Options{}
			_ = unmanaged
			other := createChanges("u", 30, false)
			// Unmanaged users are made behind the provider's back: with a
			// different marker value.
			od := newDir(t, bearerSpec(p.URL), func() directory.Options { o := opts; o.MarkerValue = "someone-else"; return o }(), bearerSecrets)
			mustApply(t, od, other...)

			seen := map[string]bool{}
			err := d.List(ctx, []string{"userName", "name.givenName"}, func(u directory.User) error {
				if !u.Managed || seen[u.Identity] || u.Attributes["userName"][0] != u.Identity {
					return fmt.Errorf("unexpected user in listing (managed=%v dup=%v)", u.Managed, seen[u.Identity])
				}
				seen[u.Identity] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != 250 {
				t.Fatalf("managed-only listing returned %d users, want 250", len(seen))
			}

			all := newDir(t, bearerSpec(p.URL), func() directory.Options { o := opts; o.ManagedOnly = false; return o }(), bearerSecrets)
			n := 0
			if err := all.List(ctx, nil, func(directory.User) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n != 280 {
				t.Fatalf("listing all returned %d users, want 280", n)
			}

			ids := []string{"missing-1"}
			for i := 0; i < 250; i += 2 {
				ids = append(ids, fmt.Sprintf("m%04d", i))
			}
			ids = append(ids, "u0003", `quo"te`)
			p.Reset()
			found, err := d.Lookup(ctx, ids, []string{"name.givenName"})
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 126 {
				t.Fatalf("lookup found %d of 126", len(found))
			}
			if found["u0003"].Managed || !found["m0100"].Managed || found["m0100"].Attributes["name.givenName"][0] != "G" {
				t.Fatalf("lookup results wrong: %+v / %+v", found["u0003"], found["m0100"])
			}
			if got := len(p.Requests()); got > 10 {
				t.Fatalf("lookup of %d identities took %d requests", len(ids), got)
			}
		})
	}
}

func TestLookupIdentityWithQuotes(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	d := newDir(t, bearerSpec(s.URL), defaultOpts(), bearerSecrets)
	name := `o"brien\x`
	mustApply(t, d, directory.Change{Op: directory.OpCreate, Identity: name, Attributes: directory.Attributes{"userName": {name}, orgMarker: {marker}}})
	found, err := d.Lookup(context.Background(), []string{name, "nobody"}, []string{"userName"})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := found[name]; !ok || u.Identity != name || len(found) != 1 {
		t.Fatalf("lookup of an identity with quotes: %+v", found)
	}
}

func TestConflicts(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			s := scimserver.Start(t, scimserver.Options{Token: token})
			spec := bearerSpec(s.URL)
			spec.DisableBulk = !bulk
			d := newDir(t, spec, defaultOpts(), bearerSecrets)
			foreign := newDir(t, spec, func() directory.Options { o := defaultOpts(); o.MarkerValue = "hr-tool"; return o }(), bearerSecrets)

			mustApply(t, foreign, directory.Change{Op: directory.OpCreate, Identity: "taken.user", Attributes: directory.Attributes{"userName": {"taken.user"}}})
			first := mustApply(t, d, createChanges("r", 2, true)...)

			// A replay of r0000 (with a changed attribute), a conflict with
			// an unmanaged user, and a fresh create.
			replay := createChanges("r", 1, true)[0]
			replay.Attributes["name.givenName"] = []string{"Changed"}
			res, err := d.Apply(context.Background(), []directory.Change{
				replay,
				{Op: directory.OpCreate, Line: 9, Identity: "taken.user", Attributes: directory.Attributes{"userName": {"taken.user"}, orgMarker: {marker}}},
				createChanges("fresh", 1, true)[0],
			})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Err != nil || res[0].ID != first[0].ID {
				t.Fatalf("replayed create: %+v, want an update of %s", res[0], first[0].ID)
			}
			u, _ := lookupOne(t, d, "r0000", []string{"name.givenName"})
			if u.Attributes["name.givenName"][0] != "Changed" {
				t.Fatal("replayed create did not update the user")
			}
			if !directory.IsChangeError(res[1].Err) {
				t.Fatalf("conflict with an unmanaged user: %v, want a RowError", res[1].Err)
			}
			if msg := res[1].Err.Error(); strings.Contains(msg, "taken.user") || !strings.Contains(msg, "userName") {
				t.Fatalf("row error %q must name the attribute and not the value", msg)
			}
			if res[2].Err != nil || res[2].ID == "" {
				t.Fatalf("fresh create: %+v", res[2])
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	p := scimserver.NewProxy(t, s)
	d := newDir(t, bearerSpec(p.URL), defaultOpts(), bearerSecrets)
	if _, err := d.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.FailNext(2, http.StatusTooManyRequests, "1")
	start := time.Now()
	mustApply(t, d, directory.Change{Op: directory.OpCreate, Identity: "slow", Attributes: directory.Attributes{"userName": {"slow"}}})
	if waited := time.Since(start); waited < 2*time.Second {
		t.Fatalf("two 429s with Retry-After: 1 took %v, want at least 2s", waited)
	}
	if _, ok := lookupOne(t, d, "slow", nil); !ok {
		t.Fatal("user not created after the retries")
	}

	// 503 without Retry-After: backoff; more failures than retries: error.
	p.FailNext(2, http.StatusServiceUnavailable, "")
	mustApply(t, d, directory.Change{Op: directory.OpCreate, Identity: "slow2", Attributes: directory.Attributes{"userName": {"slow2"}}})
	p.FailNext(10, http.StatusServiceUnavailable, "")
	_, err := d.Apply(context.Background(), []directory.Change{{Op: directory.OpCreate, Identity: "x", Attributes: directory.Attributes{"userName": {"x"}}}})
	if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonUnreachable {
		t.Fatalf("503 beyond MaxRetries: %v, want %s", err, v1alpha1.ReasonUnreachable)
	}
	p.FailNext(0, 0, "")
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Wed, 01 Jan 2025 12:00:07 GMT": 7 * time.Second,
		"Wed, 01 Jan 2025 11:00:00 GMT": 0,
		"100000":                        maxRetryAfter,
	}
	for in, want := range cases {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
	for attempt := range 30 {
		if b := retry.Backoff(attempt, backoffBase, backoffCap); b <= 0 || b > backoffCap+time.Millisecond {
			t.Fatalf("backoff(%d) = %v", attempt, b)
		}
	}
}

func TestValidateAttributes(t *testing.T) {
	if err := ValidateAttributes(names(fullAttributes("x"))); err != nil {
		t.Fatalf("vocabulary refused: %v", err)
	}
	err := ValidateAttributes([]string{"userName", "mail"})
	if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonInvalidConfig || !strings.Contains(err.Error(), `"mail"`) {
		t.Fatalf("unknown attribute: %v", err)
	}
	var de *failure.Error
	if !errors.As(err, &de) {
		t.Fatal("not a *failure.Error")
	}
}

// TestConcurrentApply runs batches at once, as the engine does.
func TestConcurrentApply(t *testing.T) {
	s := scimserver.Start(t, scimserver.Options{Token: token})
	d := newDir(t, bearerSpec(s.URL), defaultOpts(), bearerSecrets)
	var failed atomic.Int32
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			if _, err := d.Apply(context.Background(), createChanges(fmt.Sprintf("w%d-", w), 50, true)); err != nil {
				failed.Add(1)
			}
		}()
	}
	for range 4 {
		<-done
	}
	n := 0
	_ = d.List(context.Background(), nil, func(directory.User) error { n++; return nil })
	if failed.Load() != 0 || n != 200 {
		t.Fatalf("failed=%d listed=%d, want 0 and 200", failed.Load(), n)
	}
}

// A /Bulk request never exceeds the server's maxPayloadSize: the creates
// are split over as many requests as the limit needs, and all are made.
func TestBulkRespectsMaxPayloadSize(t *testing.T) {
	const limit = 4096
	s := scimserver.Start(t, scimserver.Options{Token: token, BulkMaxOperations: 1000, BulkMaxPayload: limit})
	p := scimserver.NewProxy(t, s)
	d := newDir(t, bearerSpec(p.URL), defaultOpts(), bearerSecrets)
	mustApply(t, d, createChanges("p", 100, true)...)

	bulks := 0
	for _, r := range p.Requests() {
		if r.Method == "POST" && r.Path == "/Bulk" {
			if len(r.Body) > limit {
				t.Fatalf("bulk request of %d bytes, maxPayloadSize %d", len(r.Body), limit)
			}
			bulks++
		}
	}
	if bulks < 2 {
		t.Fatalf("%d bulk requests for 100 creates under a %d-byte limit; the limit was not applied", bulks, limit)
	}
	n := 0
	if err := d.List(context.Background(), []string{"userName"}, func(directory.User) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("%d users after the import, want 100", n)
	}
}

// A server whose filter misses a value with escaped quotes answers a
// replayed create with 409: the conflict is the identity itself, found
// by reading every user, and the replay becomes an update. A user that is
// not managed is named as the holder of the identity.
func TestConflictTheFilterCannotExplain(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			s := scimserver.Start(t, scimserver.Options{Token: token, FilterKeepsEscapes: true})
			spec := bearerSpec(s.URL)
			spec.DisableBulk = !bulk
			d := newDir(t, spec, defaultOpts(), bearerSecrets)
			foreign := newDir(t, spec, func() directory.Options { o := defaultOpts(); o.MarkerValue = "hr-tool"; return o }(), bearerSecrets)
			name, other := `o"brien`, `d"arcy`
			first := mustApply(t, d, directory.Change{Op: directory.OpCreate, Identity: name, Attributes: directory.Attributes{"userName": {name}, "title": {"Dev"}}})
			mustApply(t, foreign, directory.Change{Op: directory.OpCreate, Identity: other, Attributes: directory.Attributes{"userName": {other}}})
			if found, err := d.Lookup(context.Background(), []string{name}, []string{"userName"}); err != nil || len(found) != 0 {
				t.Fatalf("the server's filter should miss %q here: %v %v", name, found, err)
			}
			res, err := d.Apply(context.Background(), []directory.Change{
				{Op: directory.OpCreate, Line: 2, Identity: name, Attributes: directory.Attributes{"userName": {name}, "title": {"Lead"}}},
				{Op: directory.OpCreate, Line: 3, Identity: other, Attributes: directory.Attributes{"userName": {other}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Err != nil || res[0].ID != first[0].ID {
				t.Fatalf("replayed create: %+v, want an update of %s", res[0], first[0].ID)
			}
			if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "userName: already taken by a user that imports do not manage") {
				t.Fatalf("conflict with an unmanaged user: %v", res[1].Err)
			}
		})
	}
}
