package controllers

import (
	"sort"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// directoryIndex indexes UserImports by spec.directoryRef.name.
const directoryIndex = "spec.directoryRef.name"

// directoryQueue is the state of the imports that write to one directory.
// Imports run one at a time, oldest first: creation time, then name.
type directoryQueue struct {
	// active names the import that is Importing, "" when none is. There is
	// at most one, unless someone moved phases by hand.
	active []string
	// pending lists the imports in ImportPending, in the order they run.
	pending []string
}

// queueOf computes the queue of the imports of one directory.
func queueOf(imports []v1alpha1.UserImport) directoryQueue {
	var q directoryQueue
	var pending []v1alpha1.UserImport
	for i := range imports {
		switch imports[i].Status.Phase {
		case v1alpha1.PhaseImporting:
			q.active = append(q.active, imports[i].Name)
		case v1alpha1.PhaseImportPending:
			pending = append(pending, imports[i])
		}
	}
	sort.Strings(q.active)
	sort.Slice(pending, func(i, j int) bool { return runsBefore(&pending[i], &pending[j]) })
	for _, p := range pending {
		q.pending = append(q.pending, p.Name)
	}
	return q
}

// runsBefore orders imports of one directory: older first, then by name.
func runsBefore(a, b *v1alpha1.UserImport) bool {
	ta, tb := a.CreationTimestamp, b.CreationTimestamp
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.Name < b.Name
}

// position is the 1-based place of name in the pending queue, 0 if absent.
func (q directoryQueue) position(name string) int {
	for i, n := range q.pending {
		if n == name {
			return i + 1
		}
	}
	return 0
}
