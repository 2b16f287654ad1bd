package controllers

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// sourcePolls shares the reads of the sources of schedules on change. One
// read per distinct source (namespace and source spec) per poll interval
// serves every schedule that watches it: a hundred schedules on one
// ConfigMap read it once a minute, not a hundred times. Reads run in the
// background, never in a reconcile, so a file server that never answers
// holds up no schedule; a read that finds a new fingerprint (or the first)
// wakes every schedule watching that source. A ConfigMap whose version
// moves in the manager's watch is read at once, whatever the interval:
// a poll that ran just before the watch showed the change would otherwise
// see it only one interval later.
//
// Only fingerprints are kept (a sha256, an ETag, a file's identity),
// never content, and a key includes the namespace: a schedule sees what
// its own namespace's sources hold, as a read of its own would.
type sourcePolls struct {
	mu       sync.Mutex
	entries  map[string]*pollEntry
	watching map[types.NamespacedName]string
	// byConfigMap holds the keys of the entries of each watched ConfigMap.
	byConfigMap map[types.NamespacedName]map[string]bool
	// wake receives the schedules to reconcile after a read.
	wake chan event.GenericEvent
	now  func() time.Time
}

type pollEntry struct {
	digest string
	err    error
	// version is the source's resourceVersion seen before the last read
	// that succeeded, "" when the source has none to compare.
	version string
	read    time.Time // when the last read ended; zero before the first
	reading bool
	// again asks for another read once the one under way ends: the source
	// moved while it ran.
	again    bool
	watchers map[types.NamespacedName]bool
	// How the last look read the source, for a read its watch starts.
	watched *watchedSource
	readFn  func(context.Context) (string, error)
}

// watchedSource is a source the manager watches without reading it: a
// ConfigMap, whose metadata-only watch tells its resourceVersion.
type watchedSource struct {
	configMap types.NamespacedName
	// version tells the resourceVersion as the watch last saw it, or ""
	// when it has none.
	version func(context.Context) string
}

func newSourcePolls(now func() time.Time) *sourcePolls {
	return &sourcePolls{
		now:         now,
		entries:     map[string]*pollEntry{},
		watching:    map[types.NamespacedName]string{},
		byConfigMap: map[types.NamespacedName]map[string]bool{},
		wake:        make(chan event.GenericEvent, 1024),
	}
}

// pollKey names a source for sharing: what a read depends on.
func pollKey(namespace string, src v1alpha1.ImportSource) string {
	src.AfterImport = nil // what happens after an import reads nothing
	data, _ := json.Marshal(src)
	return namespace + "\x00" + string(data)
}

// look returns the fingerprint last read of key for schedule sched, and
// whether there is one yet. When that read is older than maxAge (or there
// is none), it starts a read in the background, whose end wakes the
// watchers of key if what it found differs. A source whose version
// (version, may be nil) is the one seen at the last read is not read
// again: its fingerprint holds. A schedule watches one key: a new key (an
// edited template) ends its watch of the old one.
func (p *sourcePolls) look(sched types.NamespacedName, key string, maxAge time.Duration,
	watched *watchedSource, read func(context.Context) (string, error)) (digest string, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watch(sched, key)
	e := p.entries[key]
	if e.watched == nil && watched != nil {
		keys := p.byConfigMap[watched.configMap]
		if keys == nil {
			keys = map[string]bool{}
			p.byConfigMap[watched.configMap] = keys
		}
		keys[key] = true
	}
	e.watched, e.readFn = watched, read
	if !e.reading && (e.read.IsZero() || p.now().Sub(e.read) >= maxAge) {
		e.reading = true
		go p.refresh(key, e)
	}
	return e.digest, !e.read.IsZero(), e.err
}

// configMapMoved starts a read of the sources in ConfigMap cm, whose
// version moved in the manager's watch, once read by a poll: their
// schedules learn of a change at once, not at their next poll. A read
// under way is followed by another, so at most one runs per source.
func (p *sourcePolls) configMapMoved(cm types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key := range p.byConfigMap[cm] {
		e := p.entries[key]
		switch {
		case e.reading:
			e.again = true
		case !e.read.IsZero():
			e.reading = true
			go p.refresh(key, e)
		}
	}
}

func (p *sourcePolls) watch(sched types.NamespacedName, key string) {
	if old, ok := p.watching[sched]; ok && old != key {
		p.unwatch(sched, old)
	}
	p.watching[sched] = key
	e := p.entries[key]
	if e == nil {
		e = &pollEntry{watchers: map[types.NamespacedName]bool{}}
		p.entries[key] = e
	}
	e.watchers[sched] = true
}

func (p *sourcePolls) unwatch(sched types.NamespacedName, key string) {
	if e := p.entries[key]; e != nil {
		delete(e.watchers, sched)
		if len(e.watchers) == 0 && !e.reading {
			p.drop(key, e)
		}
	}
}

// drop removes the entry of key, which no schedule watches.
func (p *sourcePolls) drop(key string, e *pollEntry) {
	delete(p.entries, key)
	if e.watched != nil {
		cm := e.watched.configMap
		delete(p.byConfigMap[cm], key)
		if len(p.byConfigMap[cm]) == 0 {
			delete(p.byConfigMap, cm)
		}
	}
}

// forget ends the watch of a schedule that is gone.
func (p *sourcePolls) forget(sched types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key, ok := p.watching[sched]; ok {
		p.unwatch(sched, key)
		delete(p.watching, sched)
	}
}

// refresh reads key and records what it found; it wakes the watchers when
// that differs from the last read. Reads of different sources do not wait
// for each other: one per source is under way at most, and one that hangs
// until its timeout holds up that source alone. The API server's requests
// are paced by the manager's client (--kube-api-qps).
//
// e is the entry of key, marked reading by the caller.
func (p *sourcePolls) refresh(key string, e *pollEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	p.mu.Lock()
	watched, read := e.watched, e.readFn
	p.mu.Unlock()
	var v string
	if watched != nil {
		v = watched.version(ctx)
	}
	p.mu.Lock()
	digest, err := e.digest, e.err
	unchanged := v != "" && v == e.version && e.err == nil && !e.read.IsZero()
	p.mu.Unlock()
	if !unchanged {
		digest, err = read(ctx)
	}
	cancel()

	p.mu.Lock()
	changed := e.read.IsZero() || digest != e.digest || (err == nil) != (e.err == nil) ||
		(err != nil && err.Error() != e.err.Error())
	e.digest, e.err, e.read, e.reading = digest, err, p.now(), false
	// The version seen before the read: a change after it shows as a
	// newer version at the next look.
	e.version = v
	if err != nil {
		e.version = ""
	}
	var wake []types.NamespacedName
	if changed {
		for w := range e.watchers {
			wake = append(wake, w)
		}
	}
	switch {
	case len(e.watchers) == 0:
		p.drop(key, e)
	case e.again:
		e.again, e.reading = false, true
		go p.refresh(key, e)
	}
	p.mu.Unlock()
	for _, w := range wake {
		ev := event.GenericEvent{Object: &v1alpha1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name}}}
		select {
		case p.wake <- ev:
		default:
			go func() { p.wake <- ev }()
		}
	}
}
