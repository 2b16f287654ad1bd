// Package worker runs one stage of a UserImport — a preview or the import
// itself — against its directory: it fetches the source, runs the engine,
// and reports progress, checkpoints and results through a Sink. The same
// code runs in a Job's pod (the `worker` subcommand), inside the manager
// (the in-process executor), and from a laptop (a one-off import).
package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/invite"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/recoverycode"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/source"
)

// Stage is the part of an import a worker runs: StagePreview plans without
// writing, StageImport plans and writes.
type Stage = runcontract.Stage

// ParseStage checks a stage name.
func ParseStage(s string) (Stage, error) {
	switch Stage(s) {
	case runcontract.StagePreview, runcontract.StageImport:
		return Stage(s), nil
	}
	return "", fmt.Errorf("stage %q: must be Preview or Import", s)
}

// Opener opens the directory of a UserDirectory spec.
type Opener func(ctx context.Context, spec v1alpha1.UserDirectorySpec, secrets keyread.KeyReader) (directory.Directory, error)

// Config is one worker run.
type Config struct {
	// Stage to run.
	Stage Stage
	// Import is the UserImport as read when the run started: its spec,
	// generation and last checkpoint.
	Import *v1alpha1.UserImport
	// Directory is the spec of the UserImport's directory.
	Directory v1alpha1.UserDirectorySpec
	// Secrets reads the Secrets the directory and source refer to.
	Secrets keyread.KeyReader
	// ConfigMaps reads the invitation templates (spec.invitations.templates).
	ConfigMaps keyread.KeyReader
	// Source says where the file is found and copied to.
	Source source.Options
	// Open opens the directory.
	Open Opener
	// Sink receives progress and results.
	Sink Sink
	// ProgressInterval is the least time between two progress reports
	// (default 5 s).
	ProgressInterval time.Duration
	// Codes keeps the recovery codes of an import; nil where there is no
	// cluster to keep them in (a one-off run), which refuses
	// spec.recoveryCodes.
	Codes CodeVault
	// ExpectSHA256, when set, is the sha256 the source must have: an
	// import refuses any other file before writing. An import whose
	// UserImport holds a preview expects the preview's file.
	ExpectSHA256 string
}

// Result is what a run did when it did not fail; runcontract.OutcomeOf
// turns it and the run's error into the run's Outcome.
type Result struct {
	// Result of the engine.
	Result engine.Result
	// SafetyStop is set when a full import stopped before writing.
	SafetyStop *runcontract.SafetyStop
	// Resumed is true when the import continued from a checkpoint.
	Resumed bool
	// SourceBytesRead and SourceOpens count what a file read in place
	// cost: the bytes read from the server (every pass included) and the
	// requests that opened it.
	SourceBytesRead int64
	SourceOpens     int
	// early says that the run ended before the engine ran: an error then
	// was found before anything was written.
	early bool
}

// refuse is the end of a run that refuses the import before anything is
// written: err, made stalled with reason, and sha256 of the file refused
// ("" when it was not read).
func refuse(sha256, reason string, err error) (Result, error) {
	return Result{Result: engine.Result{SHA256: sha256}, early: true}, failure.Stall(reason, err)
}

// Run runs one stage. Errors carry no row values: they may end up in the
// import's conditions and Events. A problem with the spec or the file
// found before anything was written is a stalled *failure.Error: the
// import is refused (runcontract.Rejected), not failed.
func Run(ctx context.Context, cfg Config) (Result, error) {
	out, err := run(ctx, cfg)
	if err == nil || out.early {
		return out, err
	}
	reason := inputReason(cfg, err)
	switch {
	case reason == "":
		return out, err
	case nothingWritten(cfg, out):
		return out, failure.Stall(reason, err)
	}
	// The file's fault, but found after writes: the import fails.
	return out, failure.Wrap(reason, err)
}

// inputReason is the reason of an error that the import's spec or file
// causes, or "" for any other: an error the engine marks stalled (a
// mapping or file it cannot use), no valid row, or the error policy
// exceeded in a preview (the engine marks it stalled in the planning
// pass of a full import).
func inputReason(cfg Config, err error) string {
	var policy *engine.PolicyError
	switch {
	case failure.IsStalled(err):
		return failure.ReasonOf(err, "")
	case errors.As(err, &policy) && cfg.Stage == runcontract.StagePreview:
		return v1alpha1.ReasonErrorPolicyExceeded
	case errors.Is(err, engine.ErrNoValidRows):
		return v1alpha1.ReasonInvalidFile
	}
	return ""
}

// nothingWritten tells whether a run that failed wrote nothing: a preview,
// an import that stopped in its planning pass, or one that neither resumed
// nor committed a change.
func nothingWritten(cfg Config, out Result) bool {
	if cfg.Stage == runcontract.StagePreview || out.Result.DryRun {
		return true
	}
	c := out.Result.Counts
	return checkpointOf(cfg.Import) == nil && c.Created+c.Updated+c.Deactivated+c.Deleted == 0
}

func run(ctx context.Context, cfg Config) (_ Result, err error) {
	if cfg.Import == nil || cfg.Open == nil || cfg.Sink == nil {
		return Result{}, errors.New("worker: Import, Open and Sink are required")
	}
	imp := cfg.Import
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 5 * time.Second
	}

	if err := runcontract.CheckIdentity(imp.Spec, cfg.Directory); err != nil {
		return refuse("", v1alpha1.ReasonInvalidMapping, err)
	}
	if err := open.CheckReserved(imp.Spec, cfg.Directory); err != nil {
		return refuse("", v1alpha1.ReasonInvalidMapping, err)
	}
	dryRun := cfg.Stage == runcontract.StagePreview
	var cp *engine.ResumePoint
	if !dryRun {
		cp = checkpointOf(imp)
	}
	srcOpts := cfg.Source
	if cp != nil || expectedSHA256(cfg) != "" {
		// A file read in place is the one the checkpoint or the preview
		// read, not the newest one matching now.
		srcOpts.Pin = imp.Status.Source
	}
	file, err := source.Fetch(ctx, imp.Spec.Source, srcOpts)
	if errors.Is(err, keyread.ErrNotFound) {
		return refuse("", v1alpha1.ReasonSourceNotFound, err)
	}
	if reason := failure.ReasonOf(err, ""); reason != "" && reason != v1alpha1.ReasonSourceChanged && cp == nil {
		// Found before anything was written: the source's fault.
		return refuse("", reason, err)
	}
	if err != nil {
		return Result{}, err
	}
	defer file.Remove()
	// A resumed import is pinned by its checkpoint, which belongs to the
	// file its first rows were written from; a fresh one by its preview.
	switch want := expectedSHA256(cfg); {
	case cp != nil && cp.SHA256 != file.ID():
		return Result{}, failure.ErrChangedSinceCheckpoint
	case cp == nil && want != "" && want != file.ID():
		return Result{}, failure.ChangedSincePreview(failure.SincePreview, file.ID(), want)
	}

	if stop := rotationStop(imp, dryRun, cp); stop != nil {
		// Nothing is written: the import waits at the threshold.
		return Result{SafetyStop: stop}, nil
	}

	dir, err := cfg.Open(ctx, cfg.Directory, cfg.Secrets)
	if err != nil {
		return Result{}, fmt.Errorf("opening the directory: %w", err)
	}
	defer dir.Close()
	if v, ok := dir.(interface{ ValidateAttributes([]string) error }); ok {
		if err := v.ValidateAttributes(mappedAttributes(imp.Spec)); err != nil {
			return refuse(file.ID(), v1alpha1.ReasonInvalidMapping, fmt.Errorf("spec.mapping: %w", err))
		}
		if err := v.ValidateAttributes(invitationAttributes(imp.Spec, cfg.Directory)); err != nil {
			return refuse(file.ID(), v1alpha1.ReasonInvitationsNotConfigured,
				fmt.Errorf("UserDirectory %s spec.invitations: %w", imp.Spec.DirectoryRef.Name, err))
		}
	}

	var invites *engine.InviteConfig
	var templates string
	if imp.Spec.Invitations.Enabled() {
		var sender *mail.Sender
		if invites, sender, templates, err = invitations(ctx, cfg); err != nil {
			return Result{Result: engine.Result{SHA256: file.ID()}, early: true}, err
		}
		defer sender.Close()
		// An import sends what its preview rendered: templates edited
		// since (a ConfigMap anyone in the namespace may change) are
		// previewed again first.
		if p := imp.Status.Preview; !dryRun && cp == nil && p != nil && p.Templates != "" && p.Templates != templates {
			return Result{}, failure.ChangedSincePreview(failure.TemplatesSincePreview, templates, p.Templates)
		}
	}

	var codes *engine.CodeConfig
	if imp.Spec.RecoveryCodes.Enabled() {
		if codes, err = recoveryCodes(ctx, cfg, dir, dryRun); err != nil {
			return Result{Result: engine.Result{SHA256: file.ID()}, early: true}, err
		}
		if rec, ok := codes.Recorder.(CodeStore); ok {
			defer func() {
				// What was recorded is stored even when the run failed.
				if cerr := rec.Close(context.WithoutCancel(ctx), err == nil && !dryRun); cerr != nil && err == nil {
					err = fmt.Errorf("storing recovery codes: %w", cerr)
				}
			}()
		}
	}

	f, err := file.Open(ctx)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	in := engine.Input{File: f, SHA256: file.ID(), Resume: cp, SeekOnResume: file.InPlace()}
	out := Result{Resumed: cp != nil}

	if err := cfg.Sink.Started(ctx, file, out.Resumed); err != nil {
		return Result{}, fmt.Errorf("reporting the start: %w", err)
	}
	exec := cfg.Directory.Execution
	exec.BatchSize = open.BatchSize(cfg.Directory)
	ecfg := engine.NewConfig(imp.Spec, exec, open.Options(cfg.Directory))
	ecfg.ProgressInterval = cfg.ProgressInterval
	// The report lists the changes by row, up to a bound (ReportOutcomeKey).
	ecfg.KeepSamples = ReportKeepChanges
	ecfg.Invite = invites
	ecfg.Codes = codes
	rep := &reporter{ctx: ctx, sink: cfg.Sink, size: file.Size, resumed: out.Resumed, dryRun: dryRun}
	res, err := engine.Run(ctx, in, dir, ecfg, dryRun, rep)
	out.Result = res
	out.SourceBytesRead, out.SourceOpens = file.BytesRead()
	if rep.err != nil && err == nil {
		err = fmt.Errorf("reporting progress: %w", rep.err)
	}
	if err != nil {
		// Whatever was reported before the failure stays: the errors found
		// so far are useful to the person who has to fix the file.
		_ = cfg.Sink.Report(context.WithoutCancel(ctx), rep.runReport(res))
		return out, err
	}
	if res.SafetyStop {
		out.SafetyStop = &runcontract.SafetyStop{Deprovisions: res.PlannedDeprovisions, ManagedUsers: res.ManagedUsers,
			DeprovisionStop: res.DeprovisionStop, MembershipStop: res.MembershipStop,
			MembershipRemovals: res.PlannedMembershipRemovals, ManagedMemberships: res.ManagedMemberships, UnreadableLines: res.UnreadableLines}
	}
	if err := cfg.Sink.Report(ctx, rep.runReport(res)); err != nil {
		return out, fmt.Errorf("writing the report: %w", err)
	}
	if dryRun || out.SafetyStop != nil {
		if err := cfg.Sink.Preview(ctx, imp, res, templates); err != nil {
			return out, fmt.Errorf("reporting the preview: %w", err)
		}
		return out, nil
	}
	if err := cfg.Sink.Done(ctx, res); err != nil {
		return out, fmt.Errorf("reporting the result: %w", err)
	}
	return out, nil
}

// rotationStop stops an import with recoveryCodes.generate All, which
// replaces every user's code, unless approvedRecoveryCodes equals the
// codes its preview counted: one stray edit must not rotate everyone's
// code. A resumed import was approved before it started.
func rotationStop(imp *v1alpha1.UserImport, dryRun bool, cp *engine.ResumePoint) *runcontract.SafetyStop {
	if imp.Spec.RecoveryCodes.Generate != v1alpha1.CodesAll || dryRun || cp != nil {
		return nil
	}
	planned := int64(-1)
	if p := imp.Status.Preview; p != nil {
		planned = p.RecoveryCodes
	}
	if a := imp.Spec.Safety.ApprovedRecoveryCodes; planned >= 0 && a != nil && *a == planned {
		return nil
	}
	return &runcontract.SafetyStop{CodeStop: true, Codes: planned}
}

// expectedSHA256 is the sha256 the source of cfg must have, or "". The
// controller discards a preview whose spec changed, so a preview still
// in status belongs to the spec being imported.
func expectedSHA256(cfg Config) string {
	if cfg.ExpectSHA256 != "" {
		return cfg.ExpectSHA256
	}
	if p := cfg.Import.Status.Preview; cfg.Stage == runcontract.StageImport && p != nil {
		return p.FileID()
	}
	return ""
}

// invitations builds what the engine needs to invite users: the relay and
// the templates. A directory without spec.mail or spec.invitations, an
// address attribute the mapping lacks, or templates that cannot be read
// are refused before anything is written.
func invitations(ctx context.Context, cfg Config) (*engine.InviteConfig, *mail.Sender, string, error) {
	spec, dir := cfg.Import.Spec.Invitations, cfg.Directory
	reject := func(reason, format string, args ...any) error {
		return failure.Stalledf(reason, format, args...)
	}
	if dir.Mail == nil || dir.Invitations == nil {
		return nil, nil, "", reject(v1alpha1.ReasonInvitationsNotConfigured,
			"spec.invitations: UserDirectory %s needs spec.mail (the relay) and spec.invitations (the invited attribute) to send invitations", cfg.Import.Spec.DirectoryRef.Name)
	}
	if !slices.Contains(mappedAttributes(cfg.Import.Spec), spec.AddressAttribute) {
		return nil, nil, "", reject(v1alpha1.ReasonInvalidMapping, "spec.invitations.addressAttribute: %q is not an attribute of spec.mapping", spec.AddressAttribute)
	}
	configMaps := cfg.ConfigMaps
	if configMaps == nil {
		configMaps = func(_ context.Context, name, key string) ([]byte, error) {
			return nil, keyread.NotFound("ConfigMap %s has no key %s", name, key)
		}
	}
	tpl, err := invite.Load(ctx, configMaps, spec.Templates)
	if err != nil {
		return nil, nil, "", reject(v1alpha1.ReasonInvalidTemplate, "spec.invitations.templates: %v", err)
	}
	resend := 7 * 24 * time.Hour
	if spec.ResendAfter != nil {
		resend = spec.ResendAfter.Duration
	}
	sender := mail.NewSender(dir.Mail, cfg.Secrets, mailTimeout)
	sender.DialControl = cfg.Source.DialControl
	m := &invite.Mailer{Templates: tpl, Sender: sender, Organization: spec.Organization, SignInURL: spec.SignInURL, MessageIDs: string(cfg.Import.UID)}
	return &engine.InviteConfig{
		NewUsers:         spec.NewUsers,
		PendingUsers:     spec.PendingUsers,
		AddressAttribute: spec.AddressAttribute,
		InvitedAttribute: dir.Invitations.InvitedAttribute,
		PendingAttribute: dir.Invitations.PendingAttribute,
		PendingValue:     dir.Invitations.PendingValue,
		ResendAfter:      resend,
		Inviter:          m,
	}, sender, tpl.SHA256, nil
}

// recoveryCodes builds what the engine needs to give users codes. A
// directory that cannot store them as configured is refused before
// anything is written; an import (not a preview) gets the import's key
// and the store of its codes.
func recoveryCodes(ctx context.Context, cfg Config, dir directory.Directory, dry bool) (*engine.CodeConfig, error) {
	imp := cfg.Import
	reject := func(err error) error {
		return failure.Stall(v1alpha1.ReasonRecoveryCodesNotConfigured, err)
	}
	cc, err := CodeStorage(imp.Spec.RecoveryCodes, cfg.Directory, imp.Spec.DirectoryRef.Name)
	if err != nil {
		return nil, reject(err)
	}
	if v, ok := dir.(interface{ ValidateAttributes([]string) error }); ok {
		if err := v.ValidateAttributes(codeAttributes(cc)); err != nil {
			return nil, reject(fmt.Errorf("UserDirectory %s spec.recoveryCodes: %w", imp.Spec.DirectoryRef.Name, err))
		}
	}
	if d := imp.Spec.RecoveryCodes.ExpiresAfter; d != nil {
		// From the start of the import, so that every worker of it
		// writes the same time.
		start := time.Now()
		if t := imp.Status.StartTime; t != nil {
			start = t.Time
		}
		cc.Expires = start.Add(d.Duration).Truncate(time.Second)
	}
	if dry {
		return cc, nil
	}
	if cfg.Codes == nil {
		return nil, reject(errors.New("spec.recoveryCodes: codes are kept in Secrets of the import, and this run has no cluster to keep them in: give the one-off worker --codes-dir"))
	}
	key, err := cfg.Codes.Key(ctx)
	if err != nil {
		return nil, err
	}
	if cc.Generator, err = recoverycode.NewGenerator(key); err != nil {
		return nil, err
	}
	if cc.Recorder, err = cfg.Codes.Open(ctx, cc.Expires); err != nil {
		return nil, err
	}
	return cc, nil
}

// mailTimeout bounds one exchange with the mail relay.
const mailTimeout = 30 * time.Second

// invitationAttributes lists the attributes invitations read and write.
func invitationAttributes(spec v1alpha1.UserImportSpec, dir v1alpha1.UserDirectorySpec) []string {
	if !spec.Invitations.Enabled() || dir.Invitations == nil {
		return nil
	}
	attrs := []string{dir.Invitations.InvitedAttribute}
	if dir.Invitations.PendingAttribute != "" {
		attrs = append(attrs, dir.Invitations.PendingAttribute)
	}
	return attrs
}

// mappedAttributes lists the attributes the mapping writes.
func mappedAttributes(spec v1alpha1.UserImportSpec) []string {
	attrs := make([]string, 0, len(spec.Mapping))
	for _, m := range spec.Mapping {
		if m.Target != v1alpha1.TargetGroups { // its attribute only names it
			attrs = append(attrs, m.Attribute)
		}
	}
	return attrs
}

// statusCheckpoint is the engine's checkpoint as the status records it.
func statusCheckpoint(cp *engine.ResumePoint) *v1alpha1.Checkpoint {
	return &v1alpha1.Checkpoint{Line: cp.Line, Offset: cp.Offset, SHA256: cp.SHA256, Step: cp.Step,
		DuplicatesKnown: cp.Duplicates != nil, DuplicatesAfter: cp.Duplicates, KnownGroups: cp.KnownGroups}
}

// checkpointOf turns the import's recorded checkpoint into the engine's.
func checkpointOf(imp *v1alpha1.UserImport) *engine.ResumePoint {
	p := imp.Status.Progress
	if p == nil || p.Checkpoint == nil {
		return nil
	}
	cp := &engine.ResumePoint{
		Line:   p.Checkpoint.Line,
		Offset: p.Checkpoint.Offset,
		SHA256: p.Checkpoint.SHA256,
		Step:   p.Checkpoint.Step,
		Counts: engine.Counts{Rows: p.RowsProcessed, ChangeCounts: p.ChangeCounts, Codes: p.RecoveryCodes},
	}
	if p.Groups != nil {
		cp.Counts.Groups = *p.Groups
	}
	if k := p.Checkpoint.KnownGroups; k != nil {
		cp.KnownGroups = slices.Clone(k)
	}
	if p.Checkpoint.DuplicatesKnown {
		cp.Duplicates = append([]int64{}, p.Checkpoint.DuplicatesAfter...)
	}
	return cp
}
