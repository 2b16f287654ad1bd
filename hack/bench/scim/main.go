// Command scim benchmarks an import into the SCIM test server: 20,000 new
// users imported through the engine, against the same server's raw create
// rate measured in the same run by a plain loop of concurrent POSTs into
// a fresh server, with as many requests in flight as the engine has
// batches. The last line printed is
//
//	BENCH scim users=… import_s=… raw_s=… ratio=…
//
// ratio is raw_s/import_s: 1 means the engine creates users as fast as
// the server takes them.
//
// The directory's scope is All by default. With scope Managed a full
// import looks up each batch of creates before writing it (a user that
// imports do not manage must not be taken over); the test server answers
// such a filter by scanning every user it holds, so on it the lookups,
// not the writes, set the pace (-scope Managed measures that). /Bulk is
// off by default (-bulk turns it on): the test server handles it more
// slowly than single POSTs.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	scimdir "github.com/userimport/user-import-operator/internal/directory/scim"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

const (
	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	markerAttr    = enterpriseURN + ":organization"
	markerValue   = "user-import-operator"
)

func main() {
	users := flag.Int("users", 20_000, "users to import")
	conc := flag.Int("concurrency", 8, "requests in flight: the directory's and the engine's concurrency, and the raw loop's")
	batch := flag.Int("batch", 100, "changes per batch")
	bulk := flag.Bool("bulk", false, "let the engine use /Bulk (the directory's disableBulk: false)")
	scope := flag.String("scope", "All", "the directory's managed-users scope: All, or Managed (every batch of creates is then looked up first)")
	flag.Parse()
	if *scope != "All" && *scope != "Managed" {
		fmt.Fprintln(os.Stderr, "bench scim: -scope is All or Managed")
		os.Exit(2)
	}
	if err := run(*users, *conc, *batch, *bulk, *scope == "All"); err != nil {
		fmt.Fprintln(os.Stderr, "bench scim:", err)
		os.Exit(1)
	}
}

// mappingSpec maps the HR export onto a SCIM User with the enterprise
// extension.
func mappingSpec() []v1alpha1.AttributeMapping {
	return []v1alpha1.AttributeMapping{
		{Attribute: "userName", Column: "employee_id", Identity: true, Required: true},
		{Attribute: "emails", Column: "email", Transforms: []v1alpha1.Transform{{Type: "Lower"}}, Check: "Email"},
		{Attribute: "name.givenName", Column: "first_name"},
		{Attribute: "name.familyName", Column: "last_name"},
		{Attribute: "displayName", Template: "{{.first_name}} {{.last_name}}"},
		{Attribute: "title", Column: "title"},
		{Attribute: enterpriseURN + ":department", Column: "department"},
		{Attribute: enterpriseURN + ":costCenter", Column: "cost_center"},
	}
}

// resource is the User the raw loop posts for row: the same attributes
// as the import's.
func resource(row []string) map[string]any {
	return map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterpriseURN},
		"userName":    row[hrgen.ColEmployeeID],
		"active":      true,
		"name":        map[string]any{"givenName": row[hrgen.ColFirstName], "familyName": row[hrgen.ColLastName]},
		"displayName": row[hrgen.ColFirstName] + " " + row[hrgen.ColLastName],
		"emails":      []map[string]any{{"value": row[hrgen.ColEmail], "type": "work", "primary": true}},
		"title":       row[hrgen.ColTitle],
		enterpriseURN: map[string]any{"department": row[hrgen.ColDepartment], "costCenter": row[hrgen.ColCostCenter], "organization": markerValue},
	}
}

func run(users, conc, batch int, bulk, all bool) error {
	_, path, sum, cleanup, err := benchio.TempCSV("uio-bench-scim-", "users.csv", users)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "bench scim: %d users, concurrency %d, batches of %d, bulk %v, scope all %v, load %s\n", users, conc, batch, bulk, all, benchio.Load1())

	rawS, err := raw(ctx, users, conc)
	if err != nil {
		return err
	}

	s, err := scimserver.StartProcess(scimserver.Options{Stderr: os.Stderr})
	if err != nil {
		return err
	}
	defer s.Stop()
	opts := directory.Options{
		IdentityAttribute: "userName",
		ManagedOnly:       !all,
		MarkerAttribute:   markerAttr,
		MarkerValue:       markerValue,
		Concurrency:       conc,
		MaxRetries:        5,
	}
	d, err := scimdir.New(ctx, &v1alpha1.SCIMDirectory{URL: s.URL, DisableBulk: !bulk}, opts, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := engine.Config{
		Mapping:          mappingSpec(),
		Mode:             v1alpha1.ModeFull,
		MissingUsers:     v1alpha1.MissingIgnore,
		Directory:        opts,
		BatchSize:        batch,
		Concurrency:      conc,
		ProgressInterval: time.Second,
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rep := &benchio.Reporter{Name: "import"}
	start := time.Now()
	res, err := engine.Run(ctx, engine.Input{File: f, SHA256: sum}, d, cfg, false, rep)
	importS := time.Since(start).Seconds()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if res.Counts.Created != int64(users) || rep.Errors > 0 {
		return fmt.Errorf("import: %d created, %d failed (%s), want %d created", res.Counts.Created, res.Counts.Failed, rep.FirstErrors(), users)
	}
	if n, err := count(ctx, s.URL); err != nil || n != users {
		return fmt.Errorf("import: the server holds %d users (%v), want %d", n, err, users)
	}
	fmt.Fprintf(os.Stderr, "import: %.2f s (%.0f users/s)\n", importS, float64(users)/importS)
	scope := "All"
	if !all {
		scope = "Managed"
	}
	fmt.Printf("BENCH scim users=%d import_s=%.2f raw_s=%.2f ratio=%.2f concurrency=%d bulk=%v scope=%s load1=%s\n",
		users, importS, rawS, rawS/importS, conc, bulk, scope, benchio.Load1())
	return nil
}

// raw posts the users to a fresh server with conc requests in flight and
// returns the seconds it took.
func raw(ctx context.Context, users, conc int) (float64, error) {
	s, err := scimserver.StartProcess(scimserver.Options{Stderr: os.Stderr})
	if err != nil {
		return 0, err
	}
	defer s.Stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= users || failed.Load() != nil {
					return
				}
				body, _ := json.Marshal(resource(hrgen.Row(benchio.Seed, i)))
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/Users", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/scim+json")
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						err = fmt.Errorf("POST /Users: status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err, _ := failed.Load().(error); err != nil {
		return 0, fmt.Errorf("raw loop: %w", err)
	}
	if n, err := count(ctx, s.URL); err != nil || n != users {
		return 0, fmt.Errorf("raw loop: the server holds %d users (%v), want %d", n, err, users)
	}
	fmt.Fprintf(os.Stderr, "raw POST loop: %.2f s (%.0f users/s)\n", secs, float64(users)/secs)
	return secs, nil
}

// count asks the server how many users it holds.
func count(ctx context.Context, base string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/Users?count=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var lr struct {
		TotalResults int `json:"totalResults"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil {
		return 0, err
	}
	return lr.TotalResults, nil
}
