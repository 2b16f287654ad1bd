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
	"github.com/userimport/user-import-operator/internal/apivalidate"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/memlimit"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/safetext"
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
      [--secrets-dir DIR] [--report-dir DIR] [--state FILE] [--expect-sha256 SUM]
  import.yaml holds a UserDirectory and a UserImport (two YAML documents),
  checked with the rules and defaults of the CRDs; key K of Secret S is read
  from DIR/S/K; progress is printed. The checkpoint is kept in the state file
  (default import.yaml.state): a rerun after an interruption resumes there,
  and refuses a source that changed. A preview prints the sha256 of its
  file; --expect-sha256 makes the import refuse any other file.

  Exit status: 0 every row succeeded; 1 the run failed; 2 bad usage;
  3 done, but some rows failed (see the report); 4 stopped by the safety
  threshold, nothing written; 5 the spec or the file was refused (a
  missing column, a file that does not parse, too many bad rows), nothing
  written.

Flags:
`

func runWorker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, workerUsage); fs.PrintDefaults() }
	namespace := fs.String("namespace", "", "namespace of the UserImport (Job mode)")
	name := fs.String("import", "", "name of the UserImport (Job mode)")
	stageName := fs.String("stage", string(runcontract.StageImport), "Preview or Import")
	secretsDir := fs.String("secrets-dir", "", "directory where key K of Secret S is the file S/K")
	configMapsDir := fs.String("configmaps-dir", "", "directory where key K of ConfigMap C is the file C/K: the invitation templates (laptop mode)")
	sourceDir := fs.String("source-dir", "", "directory holding the mounted ConfigMap or Secret source as "+runcontract.SourceFile+", or the mounted PersistentVolumeClaim (Job mode)")
	workDir := fs.String("work-dir", os.TempDir(), "directory for the local copy of the source")
	file := fs.String("file", "", "YAML file with a UserDirectory and a UserImport (laptop mode)")
	sourceFile := fs.String("source", "", "local CSV file that replaces the UserImport's source (laptop mode)")
	preview := fs.Bool("preview", false, "plan only, write nothing (laptop mode; same as --stage Preview)")
	reportDir := fs.String("report-dir", "", "directory for the report files (laptop mode)")
	codesDir := fs.String("codes-dir", "", "directory (mode 0700) that keeps the recovery codes of an import, key and codes.csv of mode 0600 (laptop mode)")
	statePath := fs.String("state", "", "file keeping the checkpoint of an import, for a rerun to resume (laptop mode; default: the --file path + .state)")
	expectSHA := fs.String("expect-sha256", "", "sha256 (or, for a file read in place, fingerprint) the source must have, as a preview printed it (laptop mode)")
	terminationLog := fs.String("termination-log", runcontract.TerminationLogPath, "file for the outcome the controller reads (Job mode)")
	if err := fs.Parse(args); err != nil {
		return exitStatus{code: exitUsage, err: err}
	}
	stage, err := worker.ParseStage(*stageName)
	if err != nil {
		return exitStatus{code: exitUsage, err: err}
	}
	if *preview {
		stage = runcontract.StagePreview
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var secrets keyread.KeyReader
	if *secretsDir != "" {
		secrets = keyread.MountedSecrets(*secretsDir)
	}
	if *file != "" {
		state := *statePath
		if state == "" {
			state = *file + ".state"
		}
		return runWorkerFromFile(ctx, localRun{
			path: *file, sourceFile: *sourceFile, stage: stage, secrets: secrets,
			workDir: *workDir, reportDir: *reportDir, codesDir: *codesDir, statePath: state, expectSHA256: *expectSHA,
			configMaps: mountedOrNil(*configMapsDir),
		})
	}
	if *namespace == "" || *name == "" {
		fs.Usage()
		return exitStatus{code: exitUsage, err: errors.New("worker: give --namespace and --import (Job mode) or --file (laptop mode)")}
	}
	memlimit.FromContainer()
	out, err := runWorkerInJob(ctx, types.NamespacedName{Namespace: *namespace, Name: *name}, stage, secrets, *sourceDir, *workDir)
	if out.SourceOpens > 0 {
		// What reading in place cost: a resume shows it started at its
		// checkpoint.
		fmt.Printf("source: read %d bytes in %d requests\n", out.SourceBytesRead, out.SourceOpens)
	}
	fmt.Printf("worker: peak memory %d MiB\n", peakMemoryMiB())
	writeTermination(*terminationLog, out, err)
	if failure.IsStalled(err) {
		return exitStatus{code: runcontract.ExitRejected, err: err}
	}
	return err
}

func runWorkerInJob(ctx context.Context, key types.NamespacedName, stage worker.Stage, secrets keyread.KeyReader, sourceDir, workDir string) (worker.Result, error) {
	var dirSpec v1alpha1.UserDirectorySpec
	if err := json.Unmarshal([]byte(os.Getenv(runcontract.EnvDirectory)), &dirSpec); err != nil {
		return worker.Result{}, fmt.Errorf("$%s does not hold a UserDirectory spec: %w", runcontract.EnvDirectory, err)
	}
	kc, err := ctrl.GetConfig()
	if err != nil {
		return worker.Result{}, err
	}
	c, err := client.New(kc, client.Options{Scheme: scheme.New()})
	if err != nil {
		return worker.Result{}, err
	}
	cfg, err := worker.InCluster(ctx, c, key, stage, dirSpec, secrets, source.Options{Dir: workDir, Secrets: secrets, AmbientS3: source.AnyBucket})
	if err != nil {
		return worker.Result{}, err
	}
	cfg.ConfigMaps = keyread.MountedConfigMaps(runcontract.TemplatesDir)
	fmt.Printf("%s of UserImport %s (generation %d)\n", stage, key, cfg.Import.Generation)
	if src := cfg.Import.Spec.Source; sourceDir != "" && (src.ConfigMap != nil || src.Secret != nil) {
		cfg.Source.MountedFile = filepath.Join(sourceDir, runcontract.SourceFile)
	}
	if sourceDir != "" && cfg.Import.Spec.Source.PersistentVolumeClaim != nil {
		cfg.Source.ClaimRoot = sourceDir
	}
	// The log shows counts, line numbers and messages, never values.
	cfg.Sink = worker.Tee(cfg.Sink, &worker.ConsoleSink{Out: os.Stdout})
	return worker.Run(ctx, cfg)
}

// writeTermination leaves the outcome where the controller reads it: the
// pod's termination message.
func writeTermination(path string, out worker.Result, err error) {
	_ = os.WriteFile(path, []byte(runcontract.OutcomeOf(out.SafetyStop, out.Result.SHA256, err).Encode()), 0o644)
}

// Exit statuses of a one-off run, for scripts.
const (
	exitFailed    = 1
	exitUsage     = 2
	exitRowErrors = 3
	exitSafety    = 4
)

// exitStatus ends the command with code; err, when set, is printed.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return safetext.Of(e.err)
}

func (e exitStatus) Unwrap() error { return e.err }

// localRun is a one-off run from a laptop.
type localRun struct {
	path, sourceFile string
	stage            worker.Stage
	secrets          keyread.KeyReader
	configMaps       keyread.KeyReader
	workDir          string
	reportDir        string
	codesDir         string
	statePath        string
	expectSHA256     string
}

func runWorkerFromFile(ctx context.Context, lr localRun) error {
	dir, imp, err := readImportFile(lr.path)
	if err != nil {
		return exitStatus{code: exitFailed, err: err}
	}
	src := source.Options{Dir: lr.workDir, Secrets: lr.secrets, AmbientS3: source.AnyBucket}
	if lr.sourceFile != "" {
		// A local file stands in for the import's source.
		imp.Spec.Source = v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "local", Key: "file"}}
		src.MountedFile = lr.sourceFile
	}
	console := &worker.ConsoleSink{Out: os.Stdout, ReportDir: lr.reportDir}
	var sink worker.Sink = console
	if lr.stage == runcontract.StageImport {
		state := &worker.StateFile{Path: lr.statePath}
		progress, err := state.Load()
		if err != nil {
			return exitStatus{code: exitFailed, err: err}
		}
		if progress != nil {
			fmt.Printf("resuming after line %d, as recorded in %s\n", progress.Checkpoint.Line, lr.statePath)
			imp.Status.Progress = progress
		}
		sink = worker.Tee(console, state)
	}
	out, err := worker.Run(ctx, worker.Config{
		Stage:        lr.stage,
		Import:       imp,
		Directory:    dir.Spec,
		Secrets:      lr.secrets,
		ConfigMaps:   lr.configMaps,
		Source:       src,
		Open:         open.Directory,
		Sink:         sink,
		ExpectSHA256: lr.expectSHA256,
		Codes:        codesVault(lr.codesDir),
	})
	if errors.Is(err, failure.ErrChangedSinceCheckpoint) {
		err = fmt.Errorf("%w (state file %s: delete it to import the new file from the start)", err, lr.statePath)
	}
	if r := failure.ReasonOf(err, ""); r != "" {
		err = fmt.Errorf("%s: %w", r, err)
	}
	if failure.IsStalled(err) {
		return exitStatus{code: runcontract.ExitRejected, err: err}
	}
	if err != nil {
		return exitStatus{code: exitFailed, err: err}
	}
	if lr.stage == runcontract.StagePreview {
		fmt.Printf("to import exactly this file: --expect-sha256 %s\n", out.Result.SHA256)
	}
	if out.SafetyStop != nil {
		return exitStatus{code: exitSafety, err: errors.New("stopped by the safety threshold: " + out.SafetyStop.Sentence(imp.Spec))}
	}
	if f := out.Result.Counts.Failed; f > 0 {
		return exitStatus{code: exitRowErrors, err: fmt.Errorf("%d of %d rows failed (see the lines above and the report)", f, out.Result.Counts.Rows)}
	}
	return nil
}

// codesVault keeps a one-off run's codes in dir; without one, a run that
// gives out codes is refused.
func codesVault(dir string) worker.CodeVault {
	if dir == "" {
		return nil
	}
	return &worker.DirVault{Dir: dir}
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
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(js, &meta); err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		// The same checks and defaults as the API server's, so that the
		// file means what it would mean applied to a cluster.
		switch meta.Kind {
		case "UserDirectory":
			dir = &v1alpha1.UserDirectory{}
			err = apivalidate.Decode(meta.Kind, js, dir)
		case "UserImport":
			imp = &v1alpha1.UserImport{}
			err = apivalidate.Decode(meta.Kind, js, imp)
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

// mountedOrNil reads ConfigMap keys from dir, or nothing without one.
func mountedOrNil(dir string) keyread.KeyReader {
	if dir == "" {
		return nil
	}
	return keyread.MountedConfigMaps(dir)
}
