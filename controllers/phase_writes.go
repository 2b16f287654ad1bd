package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/util/resourceversion"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// phaseWrites remembers, by directory, the last phase this manager wrote
// to one of the directory's imports: which import, and the
// resourceVersion the write gave it. A directory's queue may then be
// decided on the cache's copy once the cache shows that write, rather
// than read afresh from the API server at every start.
//
// The cache applies the watch of UserImports in resourceVersion order: a
// copy at or past the version written means every earlier event, and
// so every earlier phase written by this manager, is in the cache too.
// Phases are written only by this manager, under the directory's lock
// (UserImportReconciler.directories); a phase write whose outcome is not
// known (an error) makes the starts read the queue afresh until a fresh
// read shows what it left.
type phaseWrites struct {
	mu   sync.Mutex
	last map[string]phaseWrite
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
	if p.last == nil {
		p.last = map[string]phaseWrite{}
	}
	p.last[directory] = w
}

// readAfresh learns, from the imports of directory as the API server
// listed them, what a write of unknown outcome left, and forgets a write
// to an import deleted since: the cache never shows it again.
func (p *phaseWrites) readAfresh(directory string, list []v1alpha1.UserImport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.last[directory]
	if !ok {
		return
	}
	for i := range list {
		if list[i].Name == w.name {
			if w.resourceVersion == "" {
				p.last[directory] = phaseWrite{name: w.name, resourceVersion: list[i].ResourceVersion}
			}
			return
		}
	}
	delete(p.last, directory)
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
		return true
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
