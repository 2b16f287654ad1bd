// Package reportmail builds the mail that reports an import to its
// recipients (spec.report): the phase, the counts, the duration, the facts
// of the source, the first errors by line, and the outcome of every row as
// a CSV attachment. With the report Secret it comes from, it is the only
// place where identities leave the directory.
package reportmail

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// firstErrors is how many row errors the body lists.
const firstErrors = 20

// Message is the report of imp on reaching phase, from the data of its
// report Secret, to the recipients of spec.report.
func Message(imp *v1alpha1.UserImport, phase v1alpha1.ImportPhase, data map[string][]byte, now time.Time) mail.Message {
	st := imp.Status
	counts, rows := countsOf(imp, phase)
	var b strings.Builder
	fmt.Fprintf(&b, "UserImport %s/%s reached %s.\n\n", imp.Namespace, imp.Name, phase)
	if phase == v1alpha1.PhaseFailed {
		for _, c := range st.Conditions {
			if c.Type == v1alpha1.ConditionReady {
				fmt.Fprintf(&b, "Why:         %s: %s\n", c.Reason, c.Message)
			}
		}
	}
	fmt.Fprintf(&b, "Directory:   %s\n", imp.Spec.DirectoryRef.Name)
	fmt.Fprintf(&b, "Mode:        %s\n", orDefault(string(imp.Spec.Mode), string(v1alpha1.ModeDelta)))
	fmt.Fprintf(&b, "Source:      %s\n", sourceName(imp.Spec.Source))
	if s := st.Source; s != nil && s.SHA256 != "" {
		fmt.Fprintf(&b, "             %d bytes, sha256 %s\n", s.Size, s.SHA256)
	} else if s != nil {
		fmt.Fprintf(&b, "             %d bytes, fingerprint %s\n", s.Size, s.Fingerprint)
	}
	if phase != v1alpha1.PhasePreviewReady && st.StartTime != nil {
		end := now
		if st.CompletionTime != nil {
			end = st.CompletionTime.Time
		}
		fmt.Fprintf(&b, "Started:     %s (took %s)\n", st.StartTime.UTC().Format(time.RFC3339), end.Sub(st.StartTime.Time).Round(time.Second))
	}
	verb := ""
	if phase == v1alpha1.PhasePreviewReady {
		verb = "planned: "
	}
	fmt.Fprintf(&b, "Rows:        %d\n", rows)
	fmt.Fprintf(&b, "Changes:     %screated %d, updated %d, unchanged %d, deactivated %d, deleted %d, failed %d\n",
		verb, counts.Created, counts.Updated, counts.Unchanged, counts.Deactivated, counts.Deleted, counts.Failed)
	if p := st.Preview; phase == v1alpha1.PhasePreviewReady && p != nil && p.Invitations != nil {
		fmt.Fprintf(&b, "Invitations: planned: to new users %d, to pending users %d, without an address %d\n", p.Invitations.NewUsers, p.Invitations.PendingUsers, p.Invitations.NoAddress)
	}
	if i := st.Invitations; phase != v1alpha1.PhasePreviewReady && i != nil {
		fmt.Fprintf(&b, "Invitations: sent %d, not sent %d, without an address %d\n", i.Sent, i.Failed, i.NoAddress)
		if i.Message != "" {
			fmt.Fprintf(&b, "             %s\n", i.Message)
		}
	}
	if p := st.Progress; p != nil && p.Resumes > 0 && phase != v1alpha1.PhasePreviewReady {
		fmt.Fprintf(&b, "Resumed:     %d times; the attachment lists the changes of the last worker, the counts cover all\n", p.Resumes)
	}
	writeErrors(&b, data[runcontract.ReportErrorsKey])
	b.WriteString("\nThe attachment lists the outcome of every row: line, identity, action, error.\n")
	b.WriteString("This mail and the import's report Secret are the only places where identities leave the directory.\n")

	subject := fmt.Sprintf("User import %s/%s: %s — %screated %d, updated %d, failed %d",
		imp.Namespace, imp.Name, phase, verb, counts.Created, counts.Updated, counts.Failed)
	m := mail.Message{To: imp.Spec.Report.Recipients, Subject: subject, Text: b.String(),
		ID: fmt.Sprintf("%s.%s.report", imp.UID, strings.ToLower(string(phase)))}
	name := fmt.Sprintf("%s-%s-outcome.csv", imp.Name, strings.ToLower(string(phase)))
	if out := data[runcontract.ReportOutcomeKey]; len(out) > 0 {
		m.Attachments = []mail.Attachment{{Name: name, ContentType: "text/csv", Data: out}}
	} else if z := data[runcontract.ReportOutcomeGzipKey]; len(z) > 0 {
		m.Attachments = []mail.Attachment{{Name: name + ".gz", ContentType: "application/gzip", Data: z,
			Fit: func(max int) []byte { return cutGzipCSV(z, max) }}}
	}
	return m
}

// cutGzipCSV returns the compressed CSV z cut to at most max compressed
// bytes, with a last line that says how many rows it leaves out.
func cutGzipCSV(z []byte, max int) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil
	}
	r := csv.NewReader(zr)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil
	}
	w := csvsafe.NewGzipWriter(max, header)
	for {
		rec, err := r.Read()
		if err != nil {
			break
		}
		if len(rec) >= 4 && rec[0] == "" && rec[1] == "" && rec[2] == "" {
			// The report's own last line: what it left out, counted again.
			var n int64
			if _, err := fmt.Sscanf(rec[3], "%d more rows", &n); err == nil {
				w.Omitted += n
			}
			continue
		}
		w.Write(rec)
	}
	return w.Close(func(n int64) []string {
		return []string{"", "", "", fmt.Sprintf("%d more rows are not listed: the mail relay bounds the size of a message; the counts in the report are complete", n)}
	})
}

// countsOf returns the counts the report gives for phase: planned ones
// for a preview, those written otherwise.
func countsOf(imp *v1alpha1.UserImport, phase v1alpha1.ImportPhase) (v1alpha1.ChangeCounts, int64) {
	st := imp.Status
	if phase == v1alpha1.PhasePreviewReady {
		var rows int64
		if st.Source != nil {
			rows = st.Source.Rows
		}
		if st.Preview != nil {
			return st.Preview.Counts, rows
		}
		return v1alpha1.ChangeCounts{}, rows
	}
	if p := st.Progress; p != nil {
		return p.ChangeCounts, p.RowsProcessed
	}
	return v1alpha1.ChangeCounts{}, 0
}

// writeErrors lists the first row errors by line: their messages name the
// attribute and the rule, never a value.
func writeErrors(b *strings.Builder, errorsCSV []byte) {
	r := csv.NewReader(bytes.NewReader(errorsCSV))
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil || len(records) <= 1 {
		return
	}
	records = records[1:]
	fmt.Fprintf(b, "\nFirst errors by line:\n")
	for i, rec := range records {
		if i == firstErrors {
			fmt.Fprintf(b, "  … %d more in the attachment\n", len(records)-firstErrors)
			break
		}
		if len(rec) >= 3 {
			fmt.Fprintf(b, "  line %s: %s\n", rec[0], rec[len(rec)-1])
		}
	}
}

// sourceName names the source without credentials: an URL loses its user
// information and query.
func sourceName(src v1alpha1.ImportSource) string {
	switch {
	case src.ConfigMap != nil:
		return fmt.Sprintf("ConfigMap %s, key %s", src.ConfigMap.Name, src.ConfigMap.Key)
	case src.Secret != nil:
		return fmt.Sprintf("Secret %s, key %s", src.Secret.Name, src.Secret.Key)
	case src.HTTP != nil:
		u, err := url.Parse(src.HTTP.URL)
		if err != nil {
			return "an HTTP URL"
		}
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		return u.String()
	}
	return "(none)"
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
