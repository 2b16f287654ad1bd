package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/memdir"
)

var dirOpts = directory.Options{IdentityAttribute: "userName", ManagedOnly: true, MarkerAttribute: "mark", MarkerValue: "uio"}

// testConfig maps the columns id, mail and title; tests change the rest.
func testConfig(mode v1alpha1.ImportMode, missing v1alpha1.MissingUsersPolicy) Config {
	return Config{
		Mode:         mode,
		MissingUsers: missing,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "userName", Column: "id", Identity: true, Required: true},
			{Attribute: "mail", Column: "mail"},
			{Attribute: "title", Column: "title"},
		},
		Directory:   dirOpts,
		BatchSize:   2,
		Concurrency: 3,
	}
}

// user returns a managed, active user with mail and title.
func user(id, mail, title string) directory.User {
	a := directory.Attributes{"mark": {"uio"}}
	if mail != "" {
		a["mail"] = []string{mail}
	}
	if title != "" {
		a["title"] = []string{title}
	}
	return directory.User{Identity: id, Active: true, Attributes: a}
}

func inactive(u directory.User) directory.User { u.Active = false; return u }

func unmanaged(u directory.User) directory.User { delete(u.Attributes, "mark"); return u }

func seed(users ...directory.User) *memdir.Dir {
	d := memdir.New(dirOpts)
	for _, u := range users {
		d.Put(u)
	}
	return d
}

// file builds a CSV file with the header id,mail,title,status.
func file(rows ...string) string {
	return "id,mail,title,status\n" + strings.Join(rows, "\n") + "\n"
}

func input(content string, cp *ResumePoint) Input {
	sum := sha256.Sum256([]byte(content))
	return Input{File: strings.NewReader(content), SHA256: hex.EncodeToString(sum[:]), Resume: cp}
}

// recorder is a Reporter that keeps everything.
type recorder struct {
	mu       sync.Mutex
	progress []Progress
	errors   []RowError
}

func (r *recorder) Progress(p Progress) {
	r.mu.Lock()
	r.progress = append(r.progress, p)
	r.mu.Unlock()
}
func (r *recorder) RowError(e RowError) { r.mu.Lock(); r.errors = append(r.errors, e); r.mu.Unlock() }

func (r *recorder) lastCheckpoint() *ResumePoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.progress) - 1; i >= 0; i-- {
		if r.progress[i].ResumePoint != nil {
			return r.progress[i].ResumePoint
		}
	}
	return nil
}

func (r *recorder) errorLines() []int64 {
	var out []int64
	for _, e := range r.errors {
		out = append(out, e.Line)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// state renders a directory as sorted lines "id active mail title
// managed" for comparison.
func state(d *memdir.Dir) []string {
	var out []string
	for _, u := range d.Users() {
		out = append(out, fmt.Sprintf("%s active=%v mail=%v title=%v managed=%v", u.Identity, u.Active, u.Attributes["mail"], u.Attributes["title"], u.Managed))
	}
	return out
}

func runOnce(t *testing.T, d directory.Directory, cfg Config, content string, dry bool) (Result, *recorder, error) {
	t.Helper()
	rec := &recorder{}
	res, err := Run(context.Background(), input(content, nil), d, cfg, dry, rec)
	return res, rec, err
}

// importInterrupted imports content into d, cancelled after one to
// maxCheckpoints checkpoints each time and resumed from the last one,
// until a run completes. It returns that run's result, and how often a
// run resumed from each step.
func importInterrupted(t *testing.T, d directory.Directory, cfg Config, content string, r *rand.Rand, maxCheckpoints int) (Result, map[string]int) {
	t.Helper()
	var cp *ResumePoint
	steps := map[string]int{}
	for attempt := 0; ; attempt++ {
		if attempt > 2000 {
			t.Fatal("the import never finished")
		}
		ctx, cancel := context.WithCancel(context.Background())
		rep := &cancelAfter{n: 1 + r.IntN(maxCheckpoints), cancel: cancel}
		res, err := Run(ctx, input(content, cp), d, cfg, false, rep)
		cancel()
		if err == nil {
			return res, steps
		}
		if rep.n > 0 {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if last := rep.lastCheckpoint(); last != nil {
			cp = last
			steps[cp.Step]++
		}
	}
}
