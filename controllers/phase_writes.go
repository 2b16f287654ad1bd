package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/util/resourceversion"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// phaseWrites remembers, by directory, the last phase this manager wrote
// to one of the directory's imports: which import, and the
// resourceVersion the write gave it. A directory's queue may then be
// decided on the cache's copies once the cache shows that write, rather
// than read afresh from the API server at every start.
//
// The cache applies the watch of UserImports in resourceVersion order: a
// copy at or past the version written means every earlier event, and
// so every earlier phase written by this manager (or by the one before
// it), is in the cache too. Phases are written only by this manager,
// under the directory's lock (UserImportReconciler.directories). Until a
// directory's queue was read afresh once, and after a phase write whose
// outcome is not known (an error), its starts read the queue afresh.
type phaseWrites struct {
	mu   sync.Mutex
	last map[string]phaseWrite
	// listed holds the directories whose queue was read afresh since the
	// manager started: a cache filled from a list that may lag behind
	// the API server decides nothing before.
	listed map[string]bool
}

type phaseWrite struct {
	name string
	// resourceVersion is what the write gave the import; "" while the
	// write's outcome is not known.
	resourceVersion string
}

// writing says a phase write of import name of directory is under way.
func (p *phaseWrites) writing(directory, name string) {
	p.set(directory, phaseWrite{name: name})
}

// wrote records that the phase write of import name of directory gave it
// resourceVersion.
func (p *phaseWrites) wrote(directory, name, resourceVersion string) {
	p.set(directory, phaseWrite{name: name, resourceVersion: resourceVersion})
}

func (p *phaseWrites) set(directory string, w phaseWrite) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(directory, w)
}

func (p *phaseWrites) setLocked(directory string, w phaseWrite) {
	if p.last == nil {
		p.last = map[string]phaseWrite{}
	}
	p.last[directory] = w
}

// readAfresh takes the imports of directory as the API server listed
// them: every phase written in the directory, of the imports that are
// left, is at or before the newest of them, which the cache must show
// from now on.
func (p *phaseWrites) readAfresh(directory string, list []v1alpha1.UserImport) {
	var newest *v1alpha1.UserImport
	for i := range list {
		if newest == nil {
			newest = &list[i]
		} else if c, err := resourceversion.CompareResourceVersion(list[i].ResourceVersion, newest.ResourceVersion); err == nil && c > 0 {
			newest = &list[i]
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listed == nil {
		p.listed = map[string]bool{}
	}
	p.listed[directory] = true
	if newest == nil {
		delete(p.last, directory)
		return
	}
	p.setLocked(directory, phaseWrite{name: newest.Name, resourceVersion: newest.ResourceVersion})
}

// cached tells whether list, the cache's imports of directory, shows
// the last phase this manager wrote to one of them, and imp as recent as
// the reconcile read it: then no import started, or queued ahead of imp,
// is missing from it.
func (p *phaseWrites) cached(directory string, imp *v1alpha1.UserImport, list []v1alpha1.UserImport) bool {
	if !atLeast(list, imp.Name, imp.ResourceVersion) {
		// imp was read afresh, past the cache.
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.last[directory]
	if !ok {
		return p.listed[directory]
	}
	if w.resourceVersion == "" || !atLeast(list, w.name, w.resourceVersion) {
		return false
	}
	// The cache only moves on: the write stays in it.
	delete(p.last, directory)
	return true
}

// atLeast tells whether list holds import name at resourceVersion or
// later.
func atLeast(list []v1alpha1.UserImport, name, version string) bool {
	for i := range list {
		if list[i].Name == name {
			c, err := resourceversion.CompareResourceVersion(list[i].ResourceVersion, version)
			return err == nil && c >= 0
		}
	}
	return false
}
