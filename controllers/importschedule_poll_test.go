package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// fakeNow is a clock the test moves.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeNow) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeNow) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// woken collects the schedules a poll wakes, until n of them came.
func woken(t *testing.T, p *sourcePolls, n int) map[types.NamespacedName]int {
	t.Helper()
	got := map[types.NamespacedName]int{}
	for range n {
		select {
		case ev := <-p.wake:
			got[types.NamespacedName{Namespace: ev.Object.GetNamespace(), Name: ev.Object.GetName()}]++
		case <-time.After(10 * time.Second):
			t.Fatalf("woken %d of %d schedules", len(got), n)
		}
	}
	return got
}

func quiet(t *testing.T, p *sourcePolls) {
	t.Helper()
	select {
	case ev := <-p.wake:
		t.Fatalf("woke %s/%s with nothing new", ev.Object.GetNamespace(), ev.Object.GetName())
	case <-time.After(100 * time.Millisecond):
	}
}

// A hundred schedules on one source read it once per poll interval, and
// all of them learn of a new content from that one read.
func TestOneReadPerSourceAndInterval(t *testing.T) {
	clk := &fakeNow{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	p := newSourcePolls(clk.now)
	var reads atomic.Int32
	content := atomic.Value{}
	content.Store("v1")
	// The first read ends once every schedule has looked.
	gate := make(chan struct{})
	read := func(context.Context) (string, error) {
		if reads.Add(1) == 1 {
			<-gate
		}
		return content.Load().(string), nil
	}
	key := pollKey("hr", v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "export", Key: "users.csv"}})
	scheds := make([]types.NamespacedName, 100)
	for i := range scheds {
		scheds[i] = types.NamespacedName{Namespace: "hr", Name: fmt.Sprint("s", i)}
	}
	lookAll := func() (known int, digests map[string]int) {
		digests = map[string]int{}
		for _, s := range scheds {
			d, ok, err := p.look(s, key, time.Minute, nil, read)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				known++
				digests[d]++
			}
		}
		return known, digests
	}

	if known, _ := lookAll(); known != 0 {
		t.Fatalf("%d schedules know the source before its first read", known)
	}
	close(gate)
	if got := woken(t, p, 100); len(got) != 100 {
		t.Fatalf("the first read woke %d schedules, want 100", len(got))
	}
	if known, d := lookAll(); known != 100 || d["v1"] != 100 {
		t.Fatalf("after the first read: %d know it, digests %v", known, d)
	}
	clk.add(30 * time.Second)
	lookAll()
	quiet(t, p)
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads within one interval, want 1", n)
	}

	// A new content: the first look after the interval reads it, and the
	// read wakes every schedule.
	content.Store("v2")
	clk.add(31 * time.Second)
	lookAll()
	if got := woken(t, p, 100); len(got) != 100 {
		t.Fatalf("the read of a new content woke %d schedules, want 100", len(got))
	}
	if _, d := lookAll(); d["v2"] != 100 {
		t.Fatalf("after the new content: digests %v", d)
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d reads in two intervals, want 2", n)
	}
	// The same content read again wakes nobody.
	clk.add(time.Minute)
	lookAll()
	waitFor(t, func() bool { return reads.Load() == 3 })
	quiet(t, p)
}

// A source in another namespace is another source, even with the same
// spec: a schedule never sees what another namespace's read found.
func TestPollsAreKeptApartByNamespace(t *testing.T) {
	src := v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "export", Key: "users.csv"}}
	if pollKey("a", src) == pollKey("b", src) {
		t.Fatal("one key for two namespaces")
	}
	moved := src
	moved.AfterImport = &v1alpha1.AfterImport{Action: v1alpha1.AfterImportDelete}
	if pollKey("a", src) != pollKey("a", moved) {
		t.Error("afterImport, which reads nothing, makes another source")
	}
}

// A read that hangs holds up no schedule: looks return at once, and no
// second read of that source starts while the first is under way.
func TestAHungReadBlocksNoLook(t *testing.T) {
	clk := &fakeNow{t: time.Now()}
	p := newSourcePolls(clk.now)
	release := make(chan struct{})
	var reads atomic.Int32
	hung := func(ctx context.Context) (string, error) {
		reads.Add(1)
		<-release
		return "", errors.New("no answer")
	}
	s := types.NamespacedName{Namespace: "hr", Name: "s"}
	start := time.Now()
	for range 10 {
		if _, ok, _ := p.look(s, "hung", time.Second, nil, hung); ok {
			t.Fatal("a source never read is known")
		}
		clk.add(time.Minute)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("looks took %s while the read hung", d)
	}
	waitFor(t, func() bool { return reads.Load() == 1 })
	// Other sources are read meanwhile, however many hang.
	for k := range 50 {
		other := types.NamespacedName{Namespace: "hr", Name: fmt.Sprint("hung-", k)}
		p.look(other, fmt.Sprint("hung-", k), time.Second, nil, hung)
	}
	fine := types.NamespacedName{Namespace: "hr", Name: "fine"}
	p.look(fine, "fine", time.Second, nil, func(context.Context) (string, error) { return "ok", nil })
	if got := woken(t, p, 1); got[fine] != 1 {
		t.Fatalf("woken %v while other reads hang, want %s", got, fine)
	}
	for k := range 50 {
		p.forget(types.NamespacedName{Namespace: "hr", Name: fmt.Sprint("hung-", k)})
	}
	p.forget(fine)
	close(release)
	woken(t, p, 1)
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.entries) == 1 })
	if _, ok, err := p.look(s, "hung", time.Hour, nil, hung); !ok || err == nil {
		t.Fatalf("after the read: known %v, error %v; want the read's error", ok, err)
	}
	p.forget(s)
	if len(p.entries) != 0 || len(p.watching) != 0 {
		t.Errorf("a forgotten schedule leaves %d entries and %d watches", len(p.entries), len(p.watching))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestJitterStaysWithinFivePercent(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := range 200 {
		d := jittered(time.Minute, types.UID(fmt.Sprint("uid-", i)))
		if d < time.Minute || d > time.Minute+3*time.Second {
			t.Fatalf("jittered(1m) = %s", d)
		}
		seen[d] = true
		if d != jittered(time.Minute, types.UID(fmt.Sprint("uid-", i))) {
			t.Fatal("the jitter of one object changes")
		}
	}
	if len(seen) < 150 {
		t.Errorf("%d distinct waits for 200 schedules: they would poll together", len(seen))
	}
}

// A source whose version (a ConfigMap's resourceVersion, from the
// metadata-only watch) did not move is not read again; one whose version
// moved, or that has none, is.
func TestUnchangedVersionIsNotReadAgain(t *testing.T) {
	clk := &fakeNow{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	p := newSourcePolls(clk.now)
	var reads atomic.Int32
	content, version := atomic.Value{}, atomic.Value{}
	content.Store("v1")
	version.Store("100")
	read := func(context.Context) (string, error) {
		reads.Add(1)
		return content.Load().(string), nil
	}
	ver := &watchedSource{configMap: types.NamespacedName{Namespace: "hr", Name: "export"},
		version: func(context.Context) string { return version.Load().(string) }}
	s := types.NamespacedName{Namespace: "hr", Name: "s"}
	poll := func() string {
		t.Helper()
		clk.add(time.Minute)
		p.look(s, "cm", time.Minute, ver, read)
		deadline := time.Now().Add(10 * time.Second)
		for {
			p.mu.Lock()
			e := p.entries["cm"]
			reading, d := e.reading, e.digest
			p.mu.Unlock()
			if !reading {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatal("the poll did not end")
			}
			time.Sleep(time.Millisecond)
		}
	}

	if d := poll(); d != "v1" || reads.Load() != 1 {
		t.Fatalf("first poll: digest %q after %d reads, want v1 after 1", d, reads.Load())
	}
	for range 3 {
		if d := poll(); d != "v1" {
			t.Fatalf("digest %q, want v1", d)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads of a source whose version did not move, want 1", n)
	}

	content.Store("v2")
	version.Store("101")
	if d := poll(); d != "v2" || reads.Load() != 2 {
		t.Fatalf("after the version moved: digest %q after %d reads, want v2 after 2", d, reads.Load())
	}

	// Without a version (not in the watch yet, or gone), every poll reads.
	version.Store("")
	poll()
	poll()
	if n := reads.Load(); n != 4 {
		t.Fatalf("%d reads with no version to compare, want 4", n)
	}
}

// A ConfigMap's change that the manager's watch shows only after a poll
// has compared its version is read when the watch shows it, not one poll
// interval later; a change during a read is read again after it. Another
// ConfigMap's change reads nothing.
func TestAMovedConfigMapIsReadAtOnce(t *testing.T) {
	clk := &fakeNow{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	p := newSourcePolls(clk.now)
	var reads atomic.Int32
	content, version := atomic.Value{}, atomic.Value{}
	content.Store("v1")
	version.Store("100")
	gate := make(chan struct{}, 10)
	read := func(context.Context) (string, error) {
		reads.Add(1)
		c := content.Load().(string)
		<-gate
		return c, nil
	}
	cm := types.NamespacedName{Namespace: "hr", Name: "export"}
	watched := &watchedSource{configMap: cm, version: func(context.Context) string { return version.Load().(string) }}
	s := types.NamespacedName{Namespace: "hr", Name: "s"}
	digest := func() string {
		t.Helper()
		d, _, err := p.look(s, "cm", time.Hour, watched, read)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	gate <- struct{}{}
	digest()
	woken(t, p, 1)
	if d := digest(); d != "v1" {
		t.Fatalf("digest %q after the first read, want v1", d)
	}
	// The export changes; the poll due now compares the version before
	// the watch shows the new one, and reads nothing.
	content.Store("v2")
	clk.add(time.Hour)
	digest()
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return !p.entries["cm"].reading })
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads with the version unchanged, want 1", n)
	}
	// Other ConfigMaps move: nothing is read.
	p.configMapMoved(types.NamespacedName{Namespace: "hr", Name: "other"})
	p.configMapMoved(types.NamespacedName{Namespace: "it", Name: "export"})
	quiet(t, p)
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads after other ConfigMaps moved, want 1", n)
	}
	// The watch shows the new version: the change is read, and the
	// schedule woken, with no poll due.
	version.Store("101")
	gate <- struct{}{}
	p.configMapMoved(cm)
	woken(t, p, 1)
	if d := digest(); d != "v2" || reads.Load() != 2 {
		t.Fatalf("after the watch showed the change: digest %q after %d reads, want v2 after 2", d, reads.Load())
	}

	// A change while a read is under way: that read ends, then one more
	// reads it.
	version.Store("102")
	p.configMapMoved(cm)
	waitFor(t, func() bool { return reads.Load() == 3 })
	content.Store("v3")
	version.Store("103")
	p.configMapMoved(cm)
	gate <- struct{}{}
	gate <- struct{}{}
	waitFor(t, func() bool { return reads.Load() == 4 })
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return !p.entries["cm"].reading })
	if d := digest(); d != "v3" {
		t.Fatalf("after a change during a read: digest %q, want v3", d)
	}
	if n := reads.Load(); n != 4 {
		t.Fatalf("%d reads, want 4: one a move, and one after the move during a read", n)
	}

	p.forget(s)
	if len(p.entries) != 0 || len(p.byConfigMap) != 0 {
		t.Errorf("a forgotten schedule leaves %d entries and %d watched ConfigMaps", len(p.entries), len(p.byConfigMap))
	}
}
