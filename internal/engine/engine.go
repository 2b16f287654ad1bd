package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvread"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// Counts count rows and changes. In a dry run they count planned changes.
// The changes are counted as the status shows them; Failed counts bad
// rows and changes the directory refused.
type Counts struct {
	// Rows is the number of data rows read, bad ones included.
	Rows int64
	v1alpha1.ChangeCounts
	// Codes is the number of recovery codes given to users written
	// (planned in a dry run); a resumed run counts on from its
	// checkpoint.
	Codes int64
	// Groups counts the changes of groups and manager references.
	Groups v1alpha1.GroupCounts
}

func (c *Counts) add(o Counts) {
	c.Rows += o.Rows
	c.Created += o.Created
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deactivated += o.Deactivated
	c.Deleted += o.Deleted
	c.Failed += o.Failed
	c.Codes += o.Codes
	c.Groups = addGroupCounts(c.Groups, o.Groups)
}

// ResumePoint is a position in the file up to which the change of every
// earlier row has been written, with the counts up to that position. A
// resumed import continues after it.
type ResumePoint struct {
	// Line is the last line done; Offset the byte offset where the next
	// record starts.
	Line   int64
	Offset int64
	// SHA256 of the file; a checkpoint is never used for another file.
	SHA256 string
	// Step is v1alpha1.StepApply, StepDeprovision, StepGroups or
	// StepManagers; the last two keep Line and Offset at the file's end.
	Step string
	// Counts up to the checkpoint; a resumed import counts on from them.
	Counts Counts
	// KnownGroups are, with createGroups false, the groups (by name in
	// lower case) the directory had when the import began: a resumed
	// import accepts the same names, also of a group it has emptied since
	// (in SQL, and a groupOfNames, a group goes with its last member).
	KnownGroups []string
	// Duplicates, when not nil, are the offsets after Offset of the rows
	// whose identity an earlier row has, found before the import wrote
	// (Input.SeekOnResume): a resumed import then starts reading at
	// Offset instead of planning the rows before it again. Nil when
	// unknown, or too many to keep (more than MaxKeptDuplicates).
	Duplicates []int64
}

// MaxKeptDuplicates bounds ResumePoint.Duplicates, which goes into the
// import's status.
const MaxKeptDuplicates = 1000

// Input is the file of one import.
type Input struct {
	// File is the CSV file. Run reads it from the start, once or twice.
	File io.ReadSeeker
	// SHA256 is the hex sha256 of File, computed by the caller when it
	// fetched the file.
	SHA256 string
	// Resume, when set, resumes an interrupted import.
	Resume *ResumePoint
	// SeekOnResume says that File is read in place from a server, where
	// reading it again costs what reading it once did: an import that
	// does not deprovision (delta, or full with missingUsers Ignore) finds
	// the duplicate identities before its pass (one more read of the
	// file), and its checkpoints carry them, so that a resume reads the
	// file from the checkpoint on — its header and the rest only.
	SeekOnResume bool
}

// RowError is a row that could not be imported. Msg names the line's
// problem (attribute and rule), never a value. Identity, when known, is
// the row's identity: it goes to the report Secret and the report mail,
// which may hold identities, never to logs, status or Events.
type RowError struct {
	Line     int64
	Identity string
	Msg      string
	// Warning says that the row was imported and only this is amiss (a
	// manager not found); it is not counted as failed.
	Warning bool
}

// Sample is one planned change, for the preview report: attribute names
// only, no values.
type Sample struct {
	Line       int64
	Op         directory.Op
	Identity   string
	Attributes []string
}

// Progress is a report of a running import.
type Progress struct {
	Step string
	// Counts are consistent with Checkpoint: they count every row before
	// it and none after.
	Counts Counts
	// Line and Offset are the end of the rows the counts cover: the last
	// line done and where the next record starts. The reader may be ahead.
	Line, Offset  int64
	RowsPerSecond float64
	// ResumePoint is where a resumed import would continue; nil in a dry
	// run, which writes nothing.
	ResumePoint *ResumePoint
}

// Reporter receives progress and row errors, from one goroutine at a
// time. After a resume, errors of lines before the checkpoint may be
// reported again: store them by line.
type Reporter interface {
	Progress(Progress)
	RowError(RowError)
}

// ChangeReporter is a Reporter that also receives every change written
// (planned, in a dry run) as its batch is done, and every group and
// manager change, beyond what Result keeps. Deprovisions come last.
type ChangeReporter interface {
	Reporter
	Change(Sample)
	Relation(RelationChange)
}

// Result is the outcome of Run.
type Result struct {
	DryRun bool
	// SHA256 of the file planned (Input.SHA256).
	SHA256 string
	// Counts of the changes done, or planned in a dry run.
	Counts Counts
	// ManagedUsers is the number of users in scope (full mode).
	ManagedUsers int64
	// PlannedDeprovisions is the number of users in scope missing from the
	// file that missingUsers deactivates or deletes (full mode).
	PlannedDeprovisions int64
	// PlannedMembershipRemovals is the number of memberships the Groups
	// step removes; ManagedMemberships the number of memberships of the
	// managed groups it found.
	PlannedMembershipRemovals int64
	ManagedMemberships        int64
	// UnreadableLines is the number of lines whose identity could not be
	// read (full mode): with any, deprovisions and membership removals
	// wait for approval.
	UnreadableLines int64
	// SafetyStop is true when the planned deprovisions or membership
	// removals exceed their safety threshold without approval; an import
	// then wrote nothing. DeprovisionStop and MembershipStop say which.
	SafetyStop      bool
	DeprovisionStop bool
	MembershipStop  bool
	// Samples are the first planned changes; Errors the first row errors
	// (Counts.Failed has the total).
	Samples []Sample
	Errors  []RowError
	// ResumePoint is the last checkpoint of an import.
	ResumePoint *ResumePoint
	// Invitations planned or sent (Config.Invite).
	Invitations Invitations
	// Relations are the first group and manager changes, planned or
	// written (at most MaxListedRelations).
	Relations []RelationChange
}

// ErrNoValidRows is returned by a full import that would deprovision
// users although the file has no valid row: an empty or unreadable
// export must never wipe a directory.
var ErrNoValidRows = errors.New("the file has no valid rows: a full import never deactivates or deletes users on the strength of an empty file")

// PolicyError is returned when bad rows exceed the error policy.
type PolicyError struct {
	// Failed and Rows are the counts when the import stopped, the same as
	// its Result's.
	Failed, Rows int64
	// Line is where the policy was first exceeded; 0 when it was at the
	// 100th row, where the percentage starts to count.
	Line  int64
	limit string
}

func (e *PolicyError) Error() string {
	at := "by the 100th row"
	if e.Line > 0 {
		at = fmt.Sprintf("at line %d", e.Line)
	}
	pct := ""
	if e.Rows > 0 {
		pct = fmt.Sprintf(" (%.1f %%)", float64(e.Failed)*100/float64(e.Rows))
	}
	return fmt.Sprintf("error policy: %d of %d rows failed%s; %s, first exceeded %s", e.Failed, e.Rows, pct, e.limit, at)
}

// Run plans and, unless dryRun, applies the changes that bring dir in step
// with the file. A dry run (the preview) is the same computation without
// writes: its counts are what the import does against the same directory.
func Run(ctx context.Context, in Input, dir directory.Directory, cfg Config, dryRun bool, report Reporter) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{DryRun: dryRun, SHA256: in.SHA256}, err
	}
	if report == nil {
		report = nopReporter{}
	}
	if cp := in.Resume; cp != nil && (in.SHA256 == "" || cp.SHA256 != in.SHA256) {
		return Result{DryRun: dryRun}, failure.ErrChangedSinceCheckpoint
	}
	r, err := newRun(ctx, in, dir, cfg)
	if err != nil {
		return Result{DryRun: dryRun, SHA256: in.SHA256}, err
	}
	defer r.free()
	res, err := r.write(ctx, dryRun, report)
	if err != nil || res.SafetyStop || cfg.Invite == nil {
		return res, err
	}
	res.Invitations, err = r.invite(ctx, dryRun, report)
	return res, err
}

// write plans and, unless dryRun, writes the changes of the file: its
// users, then their groups and managers.
func (r *run) write(ctx context.Context, dryRun bool, report Reporter) (Result, error) {
	if err := r.loadKnownGroups(ctx); err != nil {
		return Result{DryRun: dryRun, SHA256: r.in.SHA256}, err
	}
	if cp := r.in.Resume; cp != nil && (cp.Step == v1alpha1.StepGroups || cp.Step == v1alpha1.StepManagers) {
		// The users are written.
		c := *cp
		res := Result{DryRun: dryRun, SHA256: r.in.SHA256, Counts: cp.Counts, ResumePoint: &c}
		if r.cfg.Mode == v1alpha1.ModeFull {
			// The file's rows name the users as the directory spells them
			// (canonical), as they did in the users' step: a directory may
			// fold identities, and any may spell one otherwise than a line
			// reads (see snapshot.fold).
			if err := r.loadSnapshot(ctx); err != nil {
				return res, err
			}
		}
		return res, r.relate(ctx, dryRun, report, &res, cp.Step)
	}
	if r.rel != nil && r.cfg.Mode == v1alpha1.ModeFull {
		// The users in scope, read once: the users' pass compares with
		// them, and the groups and managers find their keys there.
		if err := r.loadSnapshot(ctx); err != nil {
			return Result{DryRun: dryRun, SHA256: r.in.SHA256}, err
		}
	}
	if err := r.planLeave(ctx); err != nil {
		return Result{DryRun: dryRun, SHA256: r.in.SHA256}, err
	}
	if r.rel != nil && r.rel.groups != nil && !dryRun {
		// Removals from groups are checked, like deprovisions, before any
		// write.
		res, err := r.checkRemovals(ctx)
		if err != nil {
			return res, err
		}
		if res.SafetyStop {
			return r.planStopped(ctx, res, report)
		}
	}
	if err := r.prepareManagers(ctx); err != nil {
		return Result{DryRun: dryRun, SHA256: r.in.SHA256}, err
	}
	if r.rel != nil {
		// The groups as they were before any write have served (the known
		// groups, the leavers, the check of the removals): the Groups step
		// lists them again once the users are written.
		r.rel.before = nil
	}
	res, err := r.writeUsers(ctx, dryRun, report)
	if err != nil || r.rel == nil {
		return res, err
	}
	if res.SafetyStop && !dryRun {
		// Stopped before any write: like a preview, the result plans the
		// groups and managers too.
		err = r.relate(ctx, true, report, &res, v1alpha1.StepGroups)
		res.DryRun, res.SafetyStop = true, true
		return res, err
	}
	err = r.relate(ctx, dryRun, report, &res, v1alpha1.StepGroups)
	return res, err
}

// planStopped is the result of an import that its membership removals
// stopped before any write: like a preview, it reports the whole plan
// (the users' changes and deprovisions with the removals), so that the
// person who approves sees what the preview would show.
func (r *run) planStopped(ctx context.Context, stop Result, report Reporter) (Result, error) {
	if err := r.prepareManagers(ctx); err != nil {
		return stop, err
	}
	res, err := r.writeUsers(ctx, true, report)
	if err == nil {
		err = r.relate(ctx, true, report, &res, v1alpha1.StepGroups)
	}
	res.DryRun, res.SafetyStop, res.MembershipStop = true, true, true
	res.UnreadableLines = max(res.UnreadableLines, stop.UnreadableLines)
	return res, err
}

// writeUsers plans and, unless dryRun, writes the users of the file.
func (r *run) writeUsers(ctx context.Context, dryRun bool, report Reporter) (Result, error) {
	cfg, in := r.cfg, r.in
	res := Result{DryRun: dryRun, SHA256: in.SHA256}
	if cfg.Mode == v1alpha1.ModeFull {
		if r.snap == nil {
			if err := r.loadSnapshot(ctx); err != nil {
				return res, err
			}
		}
		res.ManagedUsers = int64(r.snap.len())
	}
	switch cp := in.Resume; {
	case r.deprovisions():
		// Which users are missing needs every row: no seeking.
	case cp != nil && cp.Duplicates != nil && in.SeekOnResume && cp.Step == v1alpha1.StepApply:
		r.dups, r.seekTo = cp.Duplicates, cp
	default:
		if err := r.findDuplicates(ctx); err != nil {
			return res, err
		}
	}

	if !r.deprovisions() {
		// Users that delta rows delete leave their groups first; the
		// pass's counts and checkpoints carry those removals.
		var left Result
		if err := r.leaveGroups(ctx, dryRun, report, &left); err != nil {
			return res, err
		}
		p := r.newPass(dryRun, report, in.Resume, true)
		p.counts.Groups = addGroupCounts(p.counts.Groups, left.Counts.Groups)
		err := p.run(ctx, false)
		p.fill(&res)
		res.Relations = left.Relations
		return res, err
	}

	// A full import that deprovisions plans the whole file first, so that
	// the number of users it would deprovision is known before any write.
	plan := r.newPass(true, progressUnless(dryRun, report), nil, true)
	if err := plan.run(ctx, false); err != nil {
		plan.fill(&res)
		// What the planning pass counted was planned, not written.
		res.DryRun = true
		var policy *PolicyError
		if errors.As(err, &policy) {
			// Found before any write: the file's fault, not the run's.
			err = failure.Stall(v1alpha1.ReasonErrorPolicyExceeded, err)
		}
		return res, err
	}
	res.PlannedDeprovisions = r.missing()
	if plan.counts.Rows-plan.counts.Failed == 0 {
		plan.fill(&res)
		return res, ErrNoValidRows
	}
	res.UnreadableLines = plan.unreadable
	res.SafetyStop = r.safetyStop(res.PlannedDeprovisions, res.ManagedUsers) ||
		r.unreadableStop(plan.unreadable, res.PlannedDeprovisions, r.cfg.ApprovedDeprovisions)
	res.DeprovisionStop = res.SafetyStop
	if dryRun || res.SafetyStop {
		// A safety stop writes nothing: like a preview, it reports the
		// changes it planned, deprovisions included.
		err := plan.deprovision(ctx)
		plan.fill(&res)
		res.DryRun = true
		return res, err
	}
	r.snap.clearSeen()
	// Row errors found while planning were reported by the planning pass;
	// the writing pass reports only the changes the directory refuses.
	p := r.newPass(false, report, in.Resume, false)
	p.errors = plan.errors
	err := p.run(ctx, true)
	p.fill(&res)
	return res, err
}

// run is the state of one Run shared by its passes.
type run struct {
	in      Input
	dir     directory.Directory
	cfg     Config
	header  []string
	mapper  *mapping.Mapper
	rel     *relations // groups and managers; nil without
	attrs   []string   // mapped attributes, identity first
	compare []string   // mapped attributes compared, identity excluded
	status  int        // statusColumn index, -1 without
	codeCol int        // recoveryCodes.column index, -1 without
	// checkValue is the directory's rule on values (ValueChecker); nil
	// when it has none.
	checkValue func(attribute, value string) string
	// fold is how the directory tells identities apart
	// (directory.IdentityFolder); nil when it compares them exactly. See
	// canonical.
	fold func(identity string) string
	snap *snapshot
	// probeUnmanaged tells whether the directory holds users outside the
	// managed scope, so that creates are looked up first (see
	// checkCreates); nil when it cannot tell, and it may. The probe reads
	// the whole table when it holds none: it runs once, when a create
	// first needs it, and an import that creates no one does not pay it.
	probeUnmanaged func() (bool, error)
	sets           []*idSet              // of every pass, freed by free
	offHeap        []interface{ free() } // tables and lists outside the Go heap, freed by free
	// dups are the offsets of a large delta file's rows whose identity
	// an earlier row has (see dups.go); nil when the pass keeps a set.
	dups []int64
	// seekTo is the checkpoint an import resumes at without reading the
	// rows before it (Input.SeekOnResume).
	seekTo *ResumePoint
}

// free releases the snapshot and identity sets, which live outside the
// Go heap.
func (r *run) free() {
	if r.snap != nil {
		r.snap.free()
	}
	for _, s := range r.sets {
		s.free()
	}
	for _, t := range r.offHeap {
		t.free()
	}
	if r.rel != nil {
		unmap(r.rel.createdRaw)
	}
}

// newUserTable returns a userTable that free releases.
func (r *run) newUserTable(fields int) *userTable {
	t := newUserTable(fields)
	t.index.fold = r.fold
	r.offHeap = append(r.offHeap, t)
	return t
}

func newRun(ctx context.Context, in Input, dir directory.Directory, cfg Config) (*run, error) {
	r := &run{in: in, dir: dir, cfg: cfg, status: -1, codeCol: -1}
	if f, ok := dir.(directory.IdentityFolder); ok {
		fold, err := f.IdentityFold(ctx)
		if err != nil {
			return nil, err
		}
		r.fold = fold
	}
	rd, err := r.open()
	if err != nil {
		return nil, err
	}
	r.header = rd.Header()
	users, _, _ := splitMapping(cfg.Mapping)
	r.mapper, err = mapping.Compile(users, r.header)
	if err != nil {
		// Each problem names its entry ("mapping[mail]: ...").
		return nil, failure.Stall(v1alpha1.ReasonInvalidMapping, err)
	}
	if r.rel, err = newRelations(cfg, dir, r.header); err != nil {
		return nil, err
	}
	if r.rel != nil {
		r.rel.created, r.rel.removed = r.newUserTable(1), r.newUserTable(1)
	}
	if id := r.mapper.Identity(); id != cfg.Directory.IdentityAttribute {
		return nil, failure.Stall(v1alpha1.ReasonInvalidMapping,
			fmt.Errorf("mapping: the identity entry maps %q, but the directory's identity attribute is %q", id, cfg.Directory.IdentityAttribute))
	}
	r.attrs = r.mapper.Attributes()
	if vc, ok := dir.(directory.ValueChecker); ok {
		r.checkValue = vc.CheckValue
	}
	if r.codeCol, err = r.codeColumn(); err != nil {
		return nil, err
	}
	r.compare = r.attrs[1:]
	if sc := cfg.StatusColumn; sc != nil {
		for i, h := range r.header {
			if h == sc.Column {
				r.status = i
			}
		}
		if r.status < 0 {
			return nil, failure.Stall(v1alpha1.ReasonInvalidMapping, fmt.Errorf("statusColumn: the file has no column %q", sc.Column))
		}
	}
	return r, nil
}

// open reads the file from its start, or, for a resume that seeks, from
// the checkpoint (after its header).
func (r *run) open() (*csvread.Reader, error) {
	if cp := r.seekTo; cp != nil {
		rd, err := csvread.Resume(r.in.File, csvread.OptionsFromFormat(r.cfg.Format), cp.Offset, cp.Line+1)
		if err != nil {
			return nil, fmt.Errorf("resuming at the checkpoint: %w", err)
		}
		return rd, nil
	}
	if _, err := r.in.File.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewinding the source: %w", err)
	}
	rd, err := csvread.NewReader(r.in.File, csvread.OptionsFromFormat(r.cfg.Format))
	if err != nil {
		return nil, failure.Stall(v1alpha1.ReasonInvalidFile, fmt.Errorf("reading the source: %w", err))
	}
	return rd, nil
}

// loadSnapshot lists the users in scope. A failed or partial listing is
// an error: read as "no users", it would recreate or deprovision users.
func (r *run) loadSnapshot(ctx context.Context) error {
	s := newSnapshot(r.compare)
	if cc := r.cfg.Codes; cc != nil && cc.Policy == v1alpha1.CodesWhereMissing {
		s.heldAttr = cc.HeldAttribute
	}
	attrs := r.readAttributes()
	if rel := r.rel; rel != nil && rel.managerAttr != "" {
		// The Managers step compares with the references the users hold.
		attrs = append(attrs[:len(attrs):len(attrs)], rel.managerAttr)
		s.managerAttr = rel.managerAttr
	}
	s.listing(attrs)
	var err error
	if l, ok := r.dir.(directory.ValueLister); ok {
		err = l.ListValues(ctx, attrs, s.addValues)
	} else {
		err = r.dir.List(ctx, attrs, s.add)
	}
	if err != nil {
		return fmt.Errorf("listing the users in scope: %w", err)
	}
	s.fold = r.fold
	if err := s.build(r.cfg.Directory.IdentityAttribute); err != nil {
		return err
	}
	r.snap = s
	if p, ok := r.dir.(directory.UnmanagedProber); ok && r.cfg.Directory.ManagedOnly {
		// The run writes only managed users: what the probe finds does
		// not depend on when it runs.
		r.probeUnmanaged = sync.OnceValues(func() (bool, error) {
			found, err := p.HasUnmanaged(ctx)
			if err != nil {
				return true, fmt.Errorf("looking for users outside the managed scope: %w", err)
			}
			return found, nil
		})
	}
	return nil
}

// unmanaged tells whether the directory may hold users outside the
// managed scope.
func (r *run) unmanaged() (bool, error) {
	if r.probeUnmanaged == nil {
		return true, nil
	}
	return r.probeUnmanaged()
}

func (r *run) deprovisions() bool {
	return r.cfg.Mode == v1alpha1.ModeFull && r.cfg.MissingUsers != v1alpha1.MissingIgnore
}

// missing counts the users a full import would deprovision after a pass.
func (r *run) missing() int64 {
	var n int64
	for i := range r.snap.len() {
		if r.deprovisionOp(i) != 0 {
			n++
		}
	}
	return n
}

// deprovisionOp is what missingUsers does to user i, or 0.
func (r *run) deprovisionOp(i int) directory.Op {
	if r.snap.seen(i) {
		return 0
	}
	switch r.cfg.MissingUsers {
	case v1alpha1.MissingDelete:
		return directory.OpDelete
	case v1alpha1.MissingDeactivate:
		if r.snap.active(i) {
			return directory.OpDeactivate
		}
	}
	return 0
}

// safetyStop says whether planned deprovisions exceed the thresholds
// without approval. The sentence a person reads is runcontract.SafetyStop's.
func (r *run) safetyStop(planned, managed int64) bool {
	c := r.cfg
	return exceeds(planned, managed, c.MaxDeprovision, c.MaxDeprovisionPercent, c.ApprovedDeprovisions)
}

// unreadableStop says whether a full import with rows whose identity
// cannot be read would deprovision or remove n without approval: such a
// row may name any user, so no one is proven absent until a person
// approves the exact count.
func (r *run) unreadableStop(unreadable, n int64, approved *int64) bool {
	return r.cfg.Mode == v1alpha1.ModeFull && unreadable > 0 && n > 0 && (approved == nil || *approved < n)
}

// exceeds says whether n of total is over max or maxPercent (nil: no
// bound of that kind) and more than approved.
func exceeds(n, total int64, max, maxPercent, approved *int64) bool {
	over := (max != nil && n > *max) || (maxPercent != nil && n*100 > *maxPercent*total)
	return over && (approved == nil || *approved < n)
}

type nopReporter struct{}

func (nopReporter) Progress(Progress) {}
func (nopReporter) RowError(RowError) {}

// errorsOnly passes on row errors but not progress: the planning pass
// of an import reports the rows' errors, the writing pass its progress.
type errorsOnly struct{ Reporter }

func (errorsOnly) Progress(Progress) {}

func progressUnless(dryRun bool, r Reporter) Reporter {
	if dryRun {
		return r
	}
	return errorsOnly{r}
}
