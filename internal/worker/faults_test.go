package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/leakcheck"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

// A directory whose connections drop under every lookup fails the run
// with a message, status and log that hold none of the file's values:
// the message becomes the UserImport's condition and Event.
func TestConnectionFailuresLeaveNoValuesInStatusOrLogs(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	s := scimserver.Start(t, scimserver.Options{Token: "t0ken"})
	p := scimserver.NewProxy(t, s)
	p.FaultNext(1<<20, func(m, path string) bool { return m == "GET" && strings.Contains(path, "filter=") }, scimserver.FaultReset)

	work := t.TempDir()
	csvPath := filepath.Join(work, "users.csv")
	values := writeCSV(t, csvPath, 300)
	os.MkdirAll(filepath.Join(work, "secrets", "scim"), 0o700)
	os.WriteFile(filepath.Join(work, "secrets", "scim", "token"), []byte("t0ken"), 0o600)
	secrets := keyread.MountedSecrets(filepath.Join(work, "secrets"))

	key := types.NamespacedName{Namespace: "default", Name: "leaky"}
	imp := &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: v1alpha1.UserImportSpec{
			DirectoryRef: v1alpha1.LocalObjectReference{Name: "scim"},
			Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}},
			Mode:         v1alpha1.ModeDelta,
			Mapping: []v1alpha1.AttributeMapping{
				{Attribute: "userName", Column: "email", Identity: true},
				{Attribute: "name.givenName", Column: "first_name"},
				{Attribute: "name.familyName", Column: "last_name"},
			},
		},
	}
	if err := c.Create(ctx, imp); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: "leaky-report"}}); err != nil {
		t.Fatal(err)
	}
	dirSpec := v1alpha1.UserDirectorySpec{
		IdentityAttribute: "userName",
		SCIM:              &v1alpha1.SCIMDirectory{URL: p.URL, Auth: v1alpha1.SCIMAuth{BearerToken: &v1alpha1.SecretKeyRef{Name: "scim", Key: "token"}}},
		Execution:         v1alpha1.ExecutionSettings{BatchSize: 50, Concurrency: 2},
	}
	var log bytes.Buffer
	var cur v1alpha1.UserImport
	if err := c.Get(ctx, key, &cur); err != nil {
		t.Fatal(err)
	}
	_, err := Run(ctx, Config{
		Stage: runcontract.StageImport, Import: &cur, Directory: dirSpec, Secrets: secrets,
		Source: source.Options{Dir: t.TempDir(), MountedFile: csvPath}, Open: open.Directory,
		Sink:             Tee(&APISink{Client: c, Import: key, ReportSecret: "leaky-report"}, &ConsoleSink{Out: &log}),
		ProgressInterval: time.Millisecond,
	})
	if err == nil {
		t.Fatal("the import succeeded although every lookup's connection was reset")
	}
	if err := c.Get(ctx, key, &cur); err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(cur.Status)
	termination := runcontract.OutcomeOf(nil, "", err).Message
	for what, text := range map[string]string{"error": err.Error(), "termination message": termination, "status": string(status), "log": log.String()} {
		leakcheck.NoValues(t, what, text, values)
	}
	if failure.ReasonOf(err, "") != v1alpha1.ReasonUnreachable || !strings.HasPrefix(termination, "Unreachable: ") {
		t.Errorf("the error does not say the directory was unreachable: %v (termination message %q)", err, termination)
	}
}

// The import reads the file its preview was made of, or nothing.
func TestImportRefusesAFileOtherThanItsPreviews(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	f := newFixture(t, c, "pinned")
	writeCSV(t, f.csvPath, 100)
	if _, err := f.run(ctx, t, runcontract.StagePreview, f.sink()); err != nil {
		t.Fatal(err)
	}
	imp := f.get(t)
	if p := imp.Status.Preview; p == nil || p.SHA256 != imp.Status.Source.SHA256 || p.SpecDigest != runcontract.SpecDigest(imp.Spec) {
		t.Fatalf("the preview is not pinned to its file and spec: %+v", p)
	}
	writeCSV(t, f.csvPath, 101)
	_, err := f.run(ctx, t, runcontract.StageImport, f.sink())
	if sc := failure.ChangedOf(err); sc == nil || sc.Since != failure.SincePreview || runcontract.OutcomeOf(nil, "", err).Kind != runcontract.SourceChanged {
		t.Fatalf("import of a changed file: %v, want the file changed since the preview", err)
	}
	if n := f.countUsers(t); n != 0 {
		t.Fatalf("the refused import wrote %d users", n)
	}
	writeCSV(t, f.csvPath, 100)
	if _, err := f.run(ctx, t, runcontract.StageImport, f.sink()); err != nil {
		t.Fatalf("import of the previewed file: %v", err)
	}
	if n := f.countUsers(t); n != 100 {
		t.Fatalf("%d users, want 100", n)
	}

}
