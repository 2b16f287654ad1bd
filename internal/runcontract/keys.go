package runcontract

// Keys of the report Secret, which the worker fills and the report mail
// and `kubectl usersync report` read.
const (
	// ReportErrorsKey holds the row errors: "line,message" rows.
	ReportErrorsKey = "errors.csv"
	// ReportChangesKey holds a sample of the planned changes:
	// "line,op,identity,attributes" rows.
	ReportChangesKey = "changes.csv"
	// ReportSummaryKey holds the counts, one "name=value" a line.
	ReportSummaryKey = "summary.txt"
	// ReportOutcomeKey holds the outcome by row, in file order:
	// "line,identity,action,error" rows, where action is create, update,
	// deactivate, delete (planned, in a preview) or error. Rows whose user
	// was unchanged are not listed. It is the report mail's attachment.
	ReportOutcomeKey = "outcome.csv"
	// ReportOutcomeGzipKey replaces ReportOutcomeKey when the run changed
	// more users than the plain outcome lists: the outcome of every row,
	// gzip-compressed, in the order the run met them (deprovisions last);
	// a last line counts the rows left out.
	ReportOutcomeGzipKey = "outcome.csv.gz"
	// ReportGroupsKey holds the group and manager changes:
	// "line,identity,group,change" rows, where change is create group,
	// add member, remove member, set manager or remove manager.
	ReportGroupsKey = "groups.csv"
	// ReportGroupsGzipKey replaces ReportGroupsKey beyond the changes the
	// plain file lists: all of them, gzip-compressed.
	ReportGroupsGzipKey = "groups.csv.gz"
)

// Keys of the recovery codes Secrets.
const (
	// CodesKey holds "identity,code,expires" rows, formula cells escaped,
	// in each codes Secret.
	CodesKey = "codes.csv"
	// CodesKeyData is the data key of the codes key Secret that holds the
	// key generated codes are derived from.
	CodesKeyData = "key"
)
