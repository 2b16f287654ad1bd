package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/scheme"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/worker"
)

const workerUsage = `Runs one preview or import.

In a Job (what the operator starts):
  user-import-operator worker --namespace NS --import NAME --stage Preview|Import \
      --secrets-dir DIR --source-dir DIR
  The directory's spec comes from $UIO_DIRECTORY; progress goes to the
  UserImport's status.

From a laptop, without a cluster:
  user-import-operator worker --file import.yaml [--source users.csv] [--preview] \
      [--secrets-dir DIR] [--report-dir DIR]
  import.yaml holds a UserDirectory and a UserImport (two YAML documents);
  key K of Secret S is read from DIR/S/K; progress is printed.

Flags:
`

func runWorker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, workerUsage); fs.PrintDefaults() }
	namespace := fs.String("namespace", "", "namespace of the UserImport (Job mode)")
	name := fs.String("import", "", "name of the UserImport (Job mode)")
	stageName := fs.String("stage", string(jobs.StageImport), "Preview or Import")
	secretsDir := fs.String("secrets-dir", "", "directory where key K of Secret S is the file S/K")
	sourceDir := fs.String("source-dir", "", "directory holding the mounted ConfigMap or Secret source as "+jobs.SourceFile+" (Job mode)")
	workDir := fs.String("work-dir", os.TempDir(), "directory for the local copy of the source")
	file := fs.String("file", "", "YAML file with a UserDirectory and a UserImport (laptop mode)")
	sourceFile := fs.String("source", "", "local CSV file that replaces the UserImport's source (laptop mode)")
	preview := fs.Bool("preview", false, "plan only, write nothing (laptop mode; same as --stage Preview)")
	reportDir := fs.String("report-dir", "", "directory for the report files (laptop mode)")
	terminationLog := fs.String("termination-log", jobs.TerminationLogPath, "file for the outcome the controller reads (Job mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stage, err := worker.ParseStage(*stageName)
	if err != nil {
		return err
	}
	if *preview {
		stage = jobs.StagePreview
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var secrets directory.SecretGetter
	if *secretsDir != "" {
		secrets = worker.DirSecrets(*secretsDir)
	}
	if *file != "" {
		return runWorkerFromFile(ctx, *file, *sourceFile, stage, secrets, *workDir, *reportDir)
	}
	if *namespace == "" || *name == "" {
		fs.Usage()
		return errors.New("worker: give --namespace and --import (Job mode) or --file (laptop mode)")
	}
	out, err := runWorkerInJob(ctx, types.NamespacedName{Namespace: *namespace, Name: *name}, stage, secrets, *sourceDir, *workDir)
	writeTermination(*terminationLog, out, err)
	return err
}

func runWorkerInJob(ctx context.Context, key types.NamespacedName, stage worker.Stage, secrets directory.SecretGetter, sourceDir, workDir string) (worker.Outcome, error) {
	var dirSpec v1alpha1.UserDirectorySpec
	if err := json.Unmarshal([]byte(os.Getenv(jobs.EnvDirectory)), &dirSpec); err != nil {
		return worker.Outcome{}, fmt.Errorf("$%s does not hold a UserDirectory spec: %w", jobs.EnvDirectory, err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return worker.Outcome{}, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return worker.Outcome{}, err
	}
	var imp v1alpha1.UserImport
	if err := c.Get(ctx, key, &imp); err != nil {
		return worker.Outcome{}, fmt.Errorf("reading UserImport %s: %w", key, err)
	}
	fmt.Printf("%s of UserImport %s (generation %d)\n", stage, key, imp.Generation)
	src := source.Options{Dir: workDir, Secrets: secrets}
	if sourceDir != "" && (imp.Spec.Source.ConfigMap != nil || imp.Spec.Source.Secret != nil) {
		src.MountedFile = filepath.Join(sourceDir, jobs.SourceFile)
	}
	// The name is derived, not read from status: the controller creates
	// the Secret before it starts the run, but its status patch naming
	// the Secret may land after the run has read the import.
	report := jobs.ReportSecretName(&imp)
	return worker.Run(ctx, worker.Config{
		Stage:     stage,
		Import:    &imp,
		Directory: dirSpec,
		Secrets:   secrets,
		Source:    src,
		Open:      open.Open,
		// The log shows counts, line numbers and messages, never values.
		Sink: worker.Tee(&worker.APISink{Client: c, Import: key, ReportSecret: report}, &worker.ConsoleSink{Out: os.Stdout}),
	})
}

// writeTermination leaves the outcome where the controller reads it: the
// pod's termination message.
func writeTermination(path string, out worker.Outcome, err error) {
	var msg []byte
	switch {
	case err != nil:
		msg = []byte(err.Error())
	case out.SafetyStop != nil:
		msg, _ = json.Marshal(out.SafetyStop)
	default:
		return
	}
	_ = os.WriteFile(path, msg, 0o644)
}

func runWorkerFromFile(ctx context.Context, path, sourceFile string, stage worker.Stage, secrets directory.SecretGetter, workDir, reportDir string) error {
	dir, imp, err := readImportFile(path)
	if err != nil {
		return err
	}
	src := source.Options{Dir: workDir, Secrets: secrets}
	if sourceFile != "" {
		// A local file stands in for the import's source.
		imp.Spec.Source = v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "local", Key: "file"}}
		src.MountedFile = sourceFile
	}
	out, err := worker.Run(ctx, worker.Config{
		Stage:     stage,
		Import:    imp,
		Directory: dir.Spec,
		Secrets:   secrets,
		Source:    src,
		Open:      open.Open,
		Sink:      &worker.ConsoleSink{Out: os.Stdout, ReportDir: reportDir},
	})
	if err != nil {
		return err
	}
	if out.SafetyStop != nil {
		return fmt.Errorf("stopped by the safety threshold: %s", out.SafetyStop.Message())
	}
	return nil
}

// readImportFile reads a UserDirectory and a UserImport from one YAML file.
func readImportFile(path string) (*v1alpha1.UserDirectory, *v1alpha1.UserImport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var dir *v1alpha1.UserDirectory
	var imp *v1alpha1.UserImport
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		switch meta.Kind {
		case "UserDirectory":
			dir = &v1alpha1.UserDirectory{}
			err = yaml.UnmarshalStrict(doc, dir)
		case "UserImport":
			imp = &v1alpha1.UserImport{}
			err = yaml.UnmarshalStrict(doc, imp)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: document %d (%s): %w", path, i+1, meta.Kind, err)
		}
	}
	if dir == nil || imp == nil {
		return nil, nil, fmt.Errorf("%s: needs one UserDirectory and one UserImport document", path)
	}
	return dir, imp, nil
}

func init() {
	// The manager's in-process executor runs the same worker code.
	inProcessRun = worker.RunInProcess
}
