// Package controllers holds the reconcilers of UserDirectory, UserImport
// and ImportSchedule. Each reconcile reads its object, changes the status
// in memory and writes it in one patch at the end (statusPatch); the
// executors that run previews and imports are in internal/executor, the
// Jobs they start are built by internal/jobs.
//
// The UserImport states: Draft, PreviewPending, CreatingPreview,
// PreviewReady, ImportPending (queued behind the other imports of its
// directory), Importing, and the final Completed, Cancelled and Failed.
// spec.action (Draft, Preview, Import, Cancel) says where an import goes.
//
// Decisions the controllers make:
//
//   - Previews do not take the directory's lock: they only read, so they
//     run while another import writes. Their counts are what the import
//     would do against the directory as it was during the preview; an
//     import that runs in between can change them (the condition says so).
//   - A preview belongs to the spec it was made of (status.preview's
//     generation and specDigest): any edit discards it, except a change of
//     spec.action alone from Preview to Import (the approval), which keeps
//     it and pins the import to the previewed file's sha256. Going back to
//     Draft discards it too. With action Preview a new preview is made.
//   - A reconcile that fails (the API server refused a write, a Job of the
//     import's name belongs to someone else) sets Ready=False with reason
//     ReconcileError and a Warning Event, the same in all three kinds, and
//     is retried with backoff.
//   - A safety stop holds at the generation it was found at (the
//     SafetyThreshold condition's observedGeneration, True while waiting);
//     any edit, such as setting spec.safety.approvedDeprovisions, lets the
//     import run again, and the worker decides again against the approval.
//   - Job names are deterministic per import and stage, so a second run of
//     a stage (a new preview, an approved import) first deletes the
//     finished Job of the earlier run. A Job found running is adopted.
//   - Ready is True in Draft, in PreviewReady with action Preview, and in
//     Completed; Cancelled and Failed are Ready=False and Stalled=True, so
//     that `kubectl wait --for=condition=Ready` does not report a
//     cancelled import as a success.
//   - The controller reads the UserImport, and the imports of a directory
//     when deciding which runs next, from the API server rather than the
//     cache: the worker writes the status concurrently, and a stale cache
//     could let two imports of one directory both start.
package controllers
