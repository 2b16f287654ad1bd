package engine

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/memdir"
	"github.com/userimport/user-import-operator/internal/syncmodel"
)

// Differential tests: random scenarios (a directory, a file with bad
// rows, a spec) run as a preview and an import, uninterrupted and
// interrupted, and are compared with the reference model
// (internal/syncmodel). make fuzz-sync runs more of them.

var (
	modelScenarios = flag.Int("model.scenarios", 2000, "random scenarios against the in-memory directory")
	modelSeed      = flag.Uint64("model.seed", 0, "first seed of the random scenarios")
)

// A modelScenario is reproducible from its seed.
type modelScenario struct {
	seed   uint64
	before syncmodel.Directory
	lines  []string
	spec   syncmodel.Spec
	batch  int
	conc   int
	// foldingColumn: in an SQL directory, the identity column ignores
	// case (see createFoldingTable).
	foldingColumn bool
}

var modelIDs = []string{"ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal", "ida", "zoë", "Ünal", "jo", "mo li"}

func genScenario(seed uint64) modelScenario { return genScenarioSpelled(seed, true) }

// genScenarioSpelled is genScenario; without otherCase, each identity in
// the file is spelled as the directory spells it.
func genScenarioSpelled(seed uint64, otherCase bool) modelScenario {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	s := modelScenario{seed: seed, batch: 1 + r.IntN(4), conc: 1 + r.IntN(3)}
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	mail := func(id string) string {
		// Addresses are ASCII, as LDAP's mail syntax wants.
		local := strings.NewReplacer("ë", "e", "Ü", "ue", " ", ".").Replace(id)
		return pick("", local+"@example.org", local+"@example.org", local+"(at)example.org")
	}
	title := func() string { return pick("", "Dev", "Ops", "Zoë Ünïcødé") }

	d := syncmodel.Directory{Users: map[string]*syncmodel.User{}, Groups: map[string]*syncmodel.Group{}}
	for _, id := range modelIDs {
		if r.IntN(2) == 0 {
			continue
		}
		m := mail(id)
		if strings.Contains(m, "(at)") {
			m = ""
		}
		d.Users[id] = &syncmodel.User{Identity: id, Managed: r.IntN(6) != 0, Active: r.IntN(5) != 0, Mail: m, Title: title()}
	}
	var present []string
	for id := range d.Users {
		present = append(present, id)
	}
	slices.Sort(present)
	for _, id := range present {
		if len(present) > 0 && r.IntN(2) == 0 {
			d.Users[id].Manager = present[r.IntN(len(present))]
		}
	}
	for _, g := range []struct {
		name    string
		managed bool
	}{{"Eng", true}, {"sales", true}, {"it", false}} {
		if r.IntN(4) == 0 {
			continue
		}
		grp := &syncmodel.Group{Name: g.name, Managed: g.managed}
		for _, id := range present {
			if r.IntN(3) == 0 {
				grp.Members = append(grp.Members, id)
			}
		}
		if len(grp.Members) > 0 {
			// A group without members is no group in SQL: none is made.
			d.Groups[strings.ToLower(g.name)] = grp
		}
	}
	s.before = d

	if r.IntN(2) == 0 {
		s.spec.Mode = v1alpha1.ModeFull
		s.spec.Missing = []v1alpha1.MissingUsersPolicy{v1alpha1.MissingIgnore, v1alpha1.MissingDeactivate, v1alpha1.MissingDelete}[r.IntN(3)]
	} else {
		s.spec.Mode, s.spec.Missing = v1alpha1.ModeDelta, v1alpha1.MissingIgnore
	}
	approval := func() *int64 {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return ptr(int64(r.IntN(4)))
		}
		return ptr(int64(1 << 20))
	}
	s.spec.ApprovedDeprovisions, s.spec.ApprovedMembershipRemovals = approval(), approval()
	s.spec.CreateGroups = r.IntN(4) != 0
	s.spec.Invite = r.IntN(2) == 0
	if r.IntN(3) == 0 {
		s.spec.MaxDeprovision = ptr(int64(r.IntN(4)))
	}

	for range r.IntN(14) {
		id := modelIDs[r.IntN(len(modelIDs))]
		if r.IntN(8) == 0 {
			id = "new" + fmt.Sprint(r.IntN(3))
		}
		if r.IntN(6) == 0 && otherCase {
			// Another spelling: the same user where identities ignore
			// case, another one where they do not.
			id = swapCase(id)
		}
		status := ""
		if s.spec.Mode == v1alpha1.ModeDelta {
			status = pick("", "", "", "active", "Inactive", "DELETED")
		}
		dept := pick("", "eng", "ENG|sales", " eng | it ", "   ", "new team", "Zürich", "eng|Eng", "it")
		spelled := modelIDs[r.IntN(len(modelIDs))]
		if otherCase {
			spelled = swapCase(spelled)
		}
		mgr := pick("", "", modelIDs[r.IntN(len(modelIDs))], "nobody", id, spelled)
		cell := id
		if r.IntN(10) == 0 && otherCase {
			// Blanks around an identity are not part of it, and its
			// decomposed form (NFD) is the same text. Where a blank is
			// one, a run of them inside (LDAP) is the same blank; where
			// identities compare exactly, another user.
			inner := strings.NewReplacer(" ", pick(" ", "  ", "\u00a0"))
			cell = pick(" ", "", "  ") + norm.NFD.String(inner.Replace(id)) + pick("", " ", "\t")
			mgr = pick(" ", "") + norm.NFD.String(inner.Replace(mgr)) + pick("", "  ")
		}
		line := strings.Join([]string{cell, mail(id), title(), status, dept, mgr}, ",")
		switch r.IntN(14) {
		case 0:
			line = strings.Join([]string{"", mail(id), title(), status, dept, mgr}, ",") // no identity
		case 1:
			line = strings.Join([]string{"  ", mail(id), title(), status, dept, mgr}, ",") // blanks
		case 2:
			line = id + "," + mail(id) // too few fields
		}
		s.lines = append(s.lines, line)
	}
	return s
}

// swapCase is id with the case of its ASCII letters swapped.
func swapCase(id string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case 'a' <= c && c <= 'z':
			return c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			return c - 'A' + 'a'
		}
		return c
	}, id)
}

func (s modelScenario) content() string {
	return syncmodel.Header + "\n" + strings.Join(s.lines, "\n") + "\n"
}

func (s modelScenario) config() Config { return s.configAs("userName", "mail", "manager", dirOpts) }

// configAs is the scenario's config for a directory whose identity, mail
// and manager attributes have these names.
func (s modelScenario) configAs(identity, mail, manager string, opts directory.Options) Config {
	cfg := Config{
		Mode:         s.spec.Mode,
		MissingUsers: s.spec.Missing,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: identity, Column: "id", Identity: true, Required: true},
			{Attribute: mail, Column: "mail", Check: v1alpha1.CheckEmail},
			{Attribute: "title", Column: "title"},
			{Attribute: "groups", Column: "dept", Split: "|", Target: v1alpha1.TargetGroups},
			{Attribute: manager, Column: "mgr", Target: v1alpha1.TargetManager},
		},
		Directory:                  opts,
		CreateGroups:               s.spec.CreateGroups,
		MaxDeprovision:             s.spec.MaxDeprovision,
		ApprovedDeprovisions:       s.spec.ApprovedDeprovisions,
		ApprovedMembershipRemovals: s.spec.ApprovedMembershipRemovals,
		BatchSize:                  s.batch,
		Concurrency:                s.conc,
		KeepSamples:                1000,
	}
	if s.spec.Mode == v1alpha1.ModeDelta {
		cfg.StatusColumn = &v1alpha1.StatusColumn{Column: "status", DeactivateValues: []string{"inactive"}, DeleteValues: []string{"deleted"}}
	}
	return cfg
}

// respell spells some identities of the directory as another tool may
// have written them: with a combining accent (zoë, Ünal) or, with
// blanks, blanks around them. A full import reads them as it reads a
// line's; the references of managers and groups follow. With twins, one
// respelled user in four keeps its first spelling too: another tool
// wrote the person twice, and a directory that compares exactly holds
// both.
func (s *modelScenario) respell(blanks, twins bool) {
	r := rand.New(rand.NewPCG(s.seed, 0x5e11))
	d := s.before // made for this scenario alone
	ids := slices.Sorted(maps.Keys(d.Users))
	as := map[string]string{}
	for _, id := range ids {
		if r.IntN(2) == 0 {
			continue
		}
		v := norm.NFD.String(id)
		if v == id && blanks {
			v = []string{" " + id, id + "  ", " " + id + " "}[r.IntN(3)]
		}
		if v == id {
			continue
		}
		if twins && r.IntN(4) == 0 {
			u := *d.Users[id]
			u.Identity, u.Mail = v, "twin."+u.Mail
			d.Users[v] = &u
			continue
		}
		as[id] = v
		u := d.Users[id]
		delete(d.Users, id)
		u.Identity = v
		d.Users[v] = u
	}
	for _, u := range d.Users {
		if v, ok := as[u.Manager]; ok {
			u.Manager = v
		}
	}
	for _, g := range d.Groups {
		for i, m := range g.Members {
			if v, ok := as[m]; ok {
				g.Members[i] = v
			}
		}
	}
}

// String is the scenario as a person reproduces it.
func (s modelScenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s missingUsers=%s createGroups=%v maxDeprovision=%v approvedDeprovisions=%v approvedMembershipRemovals=%v batch=%d concurrency=%d\n",
		s.seed, s.spec.Mode, s.spec.Missing, s.spec.CreateGroups, deref(s.spec.MaxDeprovision), deref(s.spec.ApprovedDeprovisions), deref(s.spec.ApprovedMembershipRemovals), s.batch, s.conc)
	b.WriteString("directory before:\n  " + strings.Join(s.before.Render(), "\n  ") + "\n")
	b.WriteString("file:\n  " + strings.Join(strings.Split(strings.TrimSpace(s.content()), "\n"), "\n  ") + "\n")
	return b.String()
}

func deref(p *int64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// minimize drops lines and users of a failing scenario while it still
// fails, so that what is printed is small.
func minimize(s modelScenario, fails func(modelScenario) bool) modelScenario {
	for changed := true; changed; {
		changed = false
		for i := range s.lines {
			c := s
			c.lines = slices.Delete(slices.Clone(s.lines), i, i+1)
			if fails(c) {
				s, changed = c, true
				break
			}
		}
		for id := range s.before.Users {
			c := s
			c.before = dropUser(s.before, id)
			if fails(c) {
				s, changed = c, true
				break
			}
		}
	}
	return s
}

func dropUser(d syncmodel.Directory, id string) syncmodel.Directory {
	out := syncmodel.Directory{Users: map[string]*syncmodel.User{}, Groups: map[string]*syncmodel.Group{}}
	for k, u := range d.Users {
		if k != id {
			c := *u
			if c.Manager == id {
				c.Manager = ""
			}
			out.Users[k] = &c
		}
	}
	for k, g := range d.Groups {
		c := *g
		c.Members = slices.DeleteFunc(slices.Clone(g.Members), func(m string) bool { return m == id })
		out.Groups[k] = &c
	}
	return out
}

// memdirOf builds the in-memory directory of a model directory. A
// user's ID is "id:" and its identity.
func memdirOf(d syncmodel.Directory) *memdir.Dir {
	m := memdir.New(dirOpts)
	for _, id := range sortedKeys(d.Users) {
		u := d.Users[id]
		a := directory.Attributes{}
		if u.Managed {
			a["mark"] = []string{"uio"}
		}
		for k, v := range map[string]string{"mail": u.Mail, "title": u.Title} {
			if v != "" {
				a[k] = []string{v}
			}
		}
		if u.Manager != "" {
			a["manager"] = []string{"id:" + u.Manager}
		}
		m.Put(directory.User{ID: "id:" + id, Identity: id, Active: u.Active, Attributes: a})
	}
	for _, k := range sortedKeys(d.Groups) {
		g := d.Groups[k]
		var members []string
		for _, id := range g.Members {
			members = append(members, "id:"+id)
		}
		m.PutGroup(g.Name, g.Managed, members...)
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readBack is a directory read back by a test: every user (Managed
// telling whether it carries the marker), its groups, and how groups and
// manager attributes refer to a user.
type readBack struct {
	users                 []directory.User
	groups                []directory.Group
	ref                   func(directory.User) string
	mailAttr, managerAttr string
	// foldRefs: a reference in other case names the same user, as an
	// LDAP DN does.
	foldRefs bool
}

// render renders what was read as the model renders its directory; a
// reference to no user reads "?". A reference names the user it spells,
// or else, with foldRefs, the one it spells in other case.
func (rb readBack) render() []string {
	byRef, byFolded := map[string]string{}, map[string]string{}
	for _, u := range rb.users {
		byRef[rb.ref(u)] = u.Identity
		byFolded[strings.ToLower(rb.ref(u))] = u.Identity
	}
	name := func(ref string) string {
		if ref == "" {
			return ""
		}
		if id, ok := byRef[ref]; ok {
			return id
		}
		if id, ok := byFolded[strings.ToLower(ref)]; ok && rb.foldRefs {
			return id
		}
		return "?"
	}
	var out []string
	for _, u := range rb.users {
		out = append(out, syncmodel.RenderUser(u.Identity, u.Managed, u.Active, first(u.Attributes[rb.mailAttr]), first(u.Attributes["title"]), name(first(u.Attributes[rb.managerAttr]))))
	}
	for _, g := range rb.groups {
		var ms []string
		for _, ref := range g.Members {
			ms = append(ms, name(ref))
		}
		if len(ms) > 0 {
			out = append(out, syncmodel.RenderGroup(g.Name, g.Managed, ms))
		}
	}
	slices.Sort(out)
	return out
}

// readBackAll lists every user of all (a provider of scope All) with the
// attributes the model renders, and every group.
func readBackAll(all modelDirectory, mailAttr, managerAttr string) (readBack, error) {
	rb := readBack{ref: all.MemberReference, mailAttr: mailAttr, managerAttr: managerAttr}
	ctx := context.Background()
	if f, ok := all.(directory.IdentityFolder); ok {
		fold, err := f.IdentityFold(ctx)
		if err != nil {
			return readBack{}, err
		}
		rb.foldRefs = fold != nil
	}
	if err := all.List(ctx, []string{mailAttr, "title", managerAttr}, func(u directory.User) error {
		rb.users = append(rb.users, u)
		return nil
	}); err != nil {
		return rb, err
	}
	err := all.ListGroups(ctx, func(g directory.Group) error {
		rb.groups = append(rb.groups, g)
		return nil
	})
	return rb, err
}

// renderMemdir renders an in-memory directory as the model renders its
// own.
func renderMemdir(m *memdir.Dir) []string {
	rb, err := readBackAll(m, "mail", "manager")
	if err != nil {
		panic(err)
	}
	rb.users = m.Users() // with Managed from the marker
	return rb.render()
}

// lineOutcomes reads the errors and warnings a run reported, by line.
func lineOutcomes(rec *recorder) (errs, warns []int64) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.errors {
		if e.Warning {
			warns = append(warns, e.Line)
		} else {
			errs = append(errs, e.Line)
		}
	}
	slices.Sort(errs)
	slices.Sort(warns)
	return slices.Compact(errs), slices.Compact(warns)
}

func modelOutcomes(res syncmodel.Result) (errs, warns []int64) {
	for line, o := range res.Lines {
		if o.Change == "error" {
			errs = append(errs, line)
		}
		if o.Warning {
			warns = append(warns, line)
		}
	}
	slices.Sort(errs)
	slices.Sort(warns)
	return errs, warns
}

// checkScenario runs a scenario's preview and import against a fresh
// in-memory directory and compares them with the model; "" when they
// agree. With interrupt, the import is stopped at random points in every
// step and resumed until done.
func checkScenario(s modelScenario, interrupt *rand.Rand) string {
	want := syncmodel.Import(s.before, s.lines, s.spec)
	d := memdirOf(s.before)
	cfg := s.config()
	sent := &sentInvitations{}
	if s.spec.Invite {
		cfg.Invite = &InviteConfig{NewUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited", Inviter: sent}
	}
	ctx := context.Background()
	prec := &recorder{}
	preview, perr := Run(ctx, input(s.content(), nil), d, cfg, true, prec)
	if got := renderMemdir(d); !slices.Equal(got, s.before.Render()) {
		return "the preview wrote:\n" + lineDiff(got, s.before.Render())
	}
	var res Result
	var err error
	rec := &recorder{}
	interruptions := 0
	if interrupt == nil {
		res, err = Run(ctx, input(s.content(), nil), d, cfg, false, rec)
	} else {
		res, err, interruptions = resumeModel(d, cfg, s.content(), interrupt, rec)
	}
	got, wantState := renderMemdir(d), want.After.Render()
	if !slices.Equal(got, wantState) {
		return fmt.Sprintf("after the import (%d interruptions), the directory differs from the model's (+ engine, - model):\n%s", interruptions, lineDiff(got, wantState))
	}
	if msg := compareInvitations(want, preview, sent.identities(), interrupt == nil); msg != "" {
		return msg
	}
	return compareWithModel(s, want, modelRun{preview: preview, perr: perr, res: res, err: err, prec: prec, rec: rec, result: true, exact: interrupt == nil})
}

// compareInvitations compares the invitations a preview planned and an
// import sent with the model's. An uninterrupted import invites each user
// once; an interrupted one may send again the few messages it had sent
// and not recorded, never to anyone else.
func compareInvitations(want syncmodel.Result, preview Result, sent []string, exact bool) string {
	if want.NoValid || want.Stopped {
		if len(sent) > 0 {
			return fmt.Sprintf("an import that wrote nothing invited %v", sent)
		}
		return ""
	}
	if n := preview.Invitations; n.NewUsers != int64(len(want.Invited)) || n.NoAddress != want.NoAddress {
		return fmt.Sprintf("the preview plans %d invitations, %d without an address; the model %d (%v), %d", n.NewUsers, n.NoAddress, len(want.Invited), want.Invited, want.NoAddress)
	}
	once := slices.Compact(slices.Clone(sent))
	if !slices.Equal(once, want.Invited) || exact && len(sent) != len(once) {
		return fmt.Sprintf("invitations sent to %v; the model invites %v", sent, want.Invited)
	}
	return ""
}

// modelRun is what a scenario's preview and import gave.
type modelRun struct {
	preview   Result
	perr      error
	res       Result
	err       error
	prec, rec *recorder // the errors of the preview and of the import's runs
	// result says that res and err are the import's (not so for an import
	// run by worker processes); exact that its counts are those of one
	// uninterrupted run.
	result, exact bool
}

// compareWithModel compares the outcome of a preview and an import with
// the model's, once their directory was found equal to the model's; ""
// when they agree.
func compareWithModel(s modelScenario, want syncmodel.Result, run modelRun) string {
	preview, perr, res, err := run.preview, run.perr, run.res, run.err
	switch {
	case want.NoValid:
		if perr == nil || run.result && err == nil {
			return fmt.Sprintf("the model finds no valid row; preview err %v, import err %v", perr, err)
		}
		return ""
	case want.Stopped:
		if perr != nil || !preview.SafetyStop || run.result && (err != nil || !res.SafetyStop) {
			return fmt.Sprintf("the model stops for safety; preview stop %v err %v, import stop %v err %v", preview.SafetyStop, perr, res.SafetyStop, err)
		}
		if run.result && (res.Counts != preview.Counts || res.PlannedDeprovisions != preview.PlannedDeprovisions || res.PlannedMembershipRemovals != preview.PlannedMembershipRemovals) {
			return fmt.Sprintf("a stopped import reports %+v (%d deprovisions, %d removals), its preview %+v (%d, %d)",
				res.Counts, res.PlannedDeprovisions, res.PlannedMembershipRemovals, preview.Counts, preview.PlannedDeprovisions, preview.PlannedMembershipRemovals)
		}
		return ""
	case err != nil || perr != nil:
		return fmt.Sprintf("preview err %v, import err %v", perr, err)
	case preview.SafetyStop || res.SafetyStop:
		return "the engine stopped for safety, the model did not"
	}
	wantCounts := Counts{Rows: int64(len(s.lines)), ChangeCounts: want.Counts, Groups: want.Groups}
	if preview.Counts != wantCounts {
		return fmt.Sprintf("preview counts %+v, model %+v", preview.Counts, wantCounts)
	}
	if run.result && run.exact && res.Counts != wantCounts {
		return fmt.Sprintf("import counts %+v, model %+v", res.Counts, wantCounts)
	}
	we, ww := modelOutcomes(want)
	for _, r := range []*recorder{run.prec, run.rec} {
		ge, gw := lineOutcomes(r)
		if !slices.Equal(ge, we) || !slices.Equal(gw, ww) {
			return fmt.Sprintf("errors on lines %v and warnings on %v; the model has errors on %v and warnings on %v", ge, gw, we, ww)
		}
	}
	return ""
}

// resumeModel runs an import that the directory stops after a random
// number of writes, and resumes it from its last checkpoint until done.
// The row errors of all runs are kept in rec.
func resumeModel(d *memdir.Dir, cfg Config, content string, r *rand.Rand, rec *recorder) (Result, error, int) {
	var cp *ResumePoint
	defer d.FailAfter(-1)
	for n := 0; n < 500; n++ {
		if n > 0 {
			step := "before the first checkpoint"
			if cp != nil {
				step = cp.Step
			}
			interruptedIn[step]++
		}
		d.FailAfter(int64(r.IntN(6)))
		one := &recorder{}
		res, err := Run(context.Background(), input(content, cp), d, cfg, false, one)
		rec.mu.Lock()
		rec.errors = append(rec.errors, one.errors...)
		rec.mu.Unlock()
		if err == nil || !strings.Contains(err.Error(), memdir.ErrInjected.Error()) {
			return res, err, n
		}
		if strings.Contains(err.Error(), "recording invitations") {
			interruptedIn["Invitations"]++
		}
		if last := one.lastCheckpoint(); last != nil {
			cp = last
		}
	}
	return Result{}, fmt.Errorf("the import never completes"), 500
}

func TestEngineAgreesWithTheModel(t *testing.T) {
	// Each scenario has directories and files of its own: these long
	// runs overlap with the other tests that allow it.
	t.Parallel()
	n := *modelScenarios
	if testing.Short() {
		n = 200
	}
	failed := 0
	for i := range uint64(n) {
		seed := *modelSeed + i
		s := genScenario(seed)
		if msg := checkScenario(s, nil); msg != "" {
			s = minimize(s, func(c modelScenario) bool { return checkScenario(c, nil) != "" })
			t.Errorf("%s%s", s, checkScenario(s, nil))
			if failed++; failed >= 3 {
				t.FailNow()
			}
		}
	}
	t.Logf("%d scenarios", n)
}

// interruptedIn counts the interruptions of resumeModel by the step of
// the checkpoint they resumed from, and, under "Invitations", those that
// stopped the recording of invitations sent.
var interruptedIn = map[string]int{}

func TestEngineAgreesWithTheModelWhenInterrupted(t *testing.T) {
	// Each scenario has directories and files of its own: these long
	// runs overlap with the other tests that allow it.
	t.Parallel()
	n := *modelScenarios / 2
	if testing.Short() {
		n = 100
	}
	failed := 0
	for i := range uint64(n) {
		seed := *modelSeed + i
		s := genScenario(seed)
		fails := func(c modelScenario) bool { return checkScenario(c, rand.New(rand.NewPCG(seed, 1))) != "" }
		if msg := checkScenario(s, rand.New(rand.NewPCG(seed, 1))); msg != "" {
			s = minimize(s, fails)
			t.Errorf("interrupted: %s%s", s, checkScenario(s, rand.New(rand.NewPCG(seed, 1))))
			if failed++; failed >= 3 {
				t.FailNow()
			}
		}
	}
	t.Logf("%d scenarios, interrupted %v", n, interruptedIn)
	for _, step := range []string{v1alpha1.StepApply, v1alpha1.StepDeprovision, v1alpha1.StepGroups, v1alpha1.StepManagers, "Invitations"} {
		if interruptedIn[step] < n/100 {
			t.Errorf("only %d interruptions resumed in the %s step: %v", interruptedIn[step], step, interruptedIn)
		}
	}
}
