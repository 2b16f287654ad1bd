// Package engine turns one CSV file into the creates, updates,
// deactivations and deletions that bring a directory in step with it. The
// preview and the import are one function, Run; a dry run plans and
// counts exactly what the import would write, and writes nothing.
//
// # Passes
//
// A pass (pass.go) streams the file once, in five roles, each in a file
// of its own:
//
//   - reading (read.go): a reader goroutine parses records
//     (internal/csvread) in chunks;
//   - mapping (map.go): mapping workers (one per core) map each row
//     (internal/mapping) and, in full mode, compare it with the snapshot
//     by hashes;
//   - planning (plan.go): the planner takes the chunks back in file order
//     and decides each row's change — what depends on earlier rows
//     (duplicates, seen flags) is decided there only, so the result is
//     that of planning row by row;
//   - applying (apply.go): Concurrency workers each look up (delta mode)
//     and apply one batch at a time;
//   - committing (commit.go): a committer takes completed batches strictly
//     in file order: only then are their counts added, their row errors
//     reported and the checkpoint moved past them.
//
// Chunks are recycled, with the memory of their records' text (a
// csvread.Arena): the values a change keeps are copied out of it, so the
// rows of unchanged users allocate next to nothing. Changes are grouped
// into batches of BatchSize (and at most max(BatchSize, 1024) rows, so
// that stretches of unchanged rows still move the checkpoint); a few times
// as many batches as workers may wait between planning and commit, so
// that one slow request does not hold the others up. When the import
// stops, the workers finish the batches they hold (for a bounded time),
// so that what was written is committed. Counts and checkpoint therefore
// always describe a prefix of the file, whatever order the directory
// answered in, and the result does not depend on timing.
//
// Full mode lists the users in scope first. A full import whose
// missingUsers is Deactivate or Delete makes two passes: a dry planning
// pass over the whole file, after which the number of users to
// deprovision is known and compared with the safety thresholds, and,
// unless that stops the import, the writing pass followed by the
// deprovision step. A file with no valid row never deprovisions anything
// (ErrNoValidRows). Delta mode makes one pass and looks users up batch by
// batch; a status column can deactivate or delete individual users.
//
// # Snapshot
//
// Full mode keeps, for each listed user, only its identity, directory id,
// active flag, a "seen in the file" flag and one 64-bit hash per mapped
// attribute (of the values normalised: empty values dropped, several
// values as a set) — not the attribute values. A row is compared hash by
// hash; an update carries only the attributes whose hash differs, with
// the row's values. Users whose entry is not seen after the file are the
// missing users. A second row with the identity of a seen entry, or of a
// user created earlier in the file (a set of 64-bit identity hashes), is
// an error on its line; delta mode keeps such a set for every identity,
// or, for a file larger than 64 MiB, finds the duplicate rows before the
// pass with partitioned temporary files so that its memory stays flat
// (dups.go).
// A failed or partial List is an error, never "no users".
//
// # Checkpoints and resume
//
// A checkpoint (line, byte offset, the file's sha256, step, counts) is a
// position up to which the change of every earlier row has been written.
// Run resumes from one only for the same file (same sha256; otherwise
// failure.ErrChangedSinceCheckpoint). It lists the directory again (full
// mode), plans the rows before the checkpoint again without writing or
// looking anything up, to rebuild the seen flags and identity sets, and
// writes from the checkpoint on, counting on from the checkpoint's counts.
// Rows after the checkpoint may have been written already (by batches done
// after a slower one that did not finish, or by a run killed outright);
// writing them again is harmless because providers upsert by identity. A
// checkpoint in the Deprovision step replays the whole file and
// deprovisions the users still missing.
//
// An import of a file read in place from a server (Input.SeekOnResume)
// that does not deprovision (delta, or full with missingUsers Ignore)
// does not replay: it finds the duplicate identities before its pass, its
// checkpoints carry the offsets of the duplicates still ahead, and a
// resume reads the header, then the file from the checkpoint's offset on
// (a range request, a seek). A full import that deprovisions must see
// every row to know who is missing, and reads the whole file again.
//
// # Groups and managers
//
// Mapping entries with target Groups and Manager are not user attributes:
// after the users are written (and deprovisioned), the Groups step and
// the Managers step (relations.go, groups.go, managers.go) read the file again for them, read the
// directory, and plan the difference with the same function in a dry run
// and an import. Their checkpoints carry their own step; a resume in one
// of them does not write the users again. Removals from groups have
// their own safety threshold, checked before any write. A full import
// into a directory that can tell a new user's reference before creating
// it (LDAP, SQL) writes each new user's manager with the user.
//
// # Errors
//
// Row errors (a bad record, a mapping rule broken, a duplicate identity,
// an identity owned by an unmanaged user, a change the directory refused)
// name the line and the rule, never a value; they go to the Reporter and
// the first KeepErrors of them to Result. The error policy (MaxErrors,
// MaxErrorPercent once 100 rows are read) is checked at each error in
// file order and stops the import with a *PolicyError; the checkpoint
// stays consistent.
package engine
