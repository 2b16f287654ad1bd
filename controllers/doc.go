// Decisions the controllers make where DESIGN.md is silent:
//
//   - Previews do not take the directory's lock: they only read, so they
//     run while another import writes. Their counts are what the import
//     would do against the directory as it was during the preview; an
//     import that runs in between can change them (the condition says so).
//   - Every edit of the spec makes a new generation, and a preview belongs
//     to one generation (status.preview.generation): any edit in Draft,
//     PreviewReady or a pending phase discards the preview, spec.action
//     included. With action Preview a new preview is made.
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
