package plugin

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// Actions report filters by.
var Actions = []string{"create", "update", "deactivate", "delete", "error"}

// Outputs of report.
var Outputs = []string{"table", "csv", "json"}

// Row is one line of a report.
type Row struct {
	Line     int64  `json:"line"`
	Identity string `json:"identity"`
	Action   string `json:"action"`
	Error    string `json:"error,omitempty"`
}

// Report prints the outcome of every row of the import's last run, from
// its report Secret: the preview's planned changes, or the import's
// changes, with the errors by line. action keeps one action; output is
// table, csv (formula cells escaped) or json.
func (p *Plugin) Report(ctx context.Context, name, action, output string) error {
	if action != "" && !slices.Contains(Actions, action) {
		return refuse("--action %q: one of %v", action, Actions)
	}
	if output == "" {
		output = "table"
	}
	if !slices.Contains(Outputs, output) {
		return refuse("-o %q: one of %v", output, Outputs)
	}
	imp, err := p.getImport(ctx, name)
	if err != nil {
		return err
	}
	ref := imp.Status.ReportSecretRef
	if ref == nil {
		return refuse("UserImport %q has no report yet (it is %s): a preview or an import writes one", name, phaseOf(imp))
	}
	var s corev1.Secret
	if err := p.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}, &s); err != nil {
		return p.apiError(err, "get", "secrets", ref.Name)
	}
	key, data, err := outcomeOf(s.Data)
	if err != nil {
		return fmt.Errorf("Secret %s key %s: %w", ref.Name, key, err)
	}
	if key == "" {
		return refuse("UserImport %q has no report yet (it is %s): its run has not finished", name, phaseOf(imp))
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("Secret %s key %s: %w", ref.Name, key, err)
	}
	var rows []Row
	var notes []string
	for _, r := range recs[min(1, len(recs)):] {
		if len(r) >= 4 && r[0] == "" && r[1] == "" && r[2] == "" {
			// The report's own last line: how many rows it leaves out.
			notes = append(notes, r[3])
			continue
		}
		if len(r) < 4 || (action != "" && r[2] != action) {
			continue
		}
		line, _ := strconv.ParseInt(r[0], 10, 64)
		rows = append(rows, Row{Line: line, Identity: r[1], Action: r[2], Error: r[3]})
	}
	switch output {
	case "json":
		enc := json.NewEncoder(p.out())
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []Row{}
		}
		return enc.Encode(rows)
	case "csv":
		w := csvsafe.NewWriter(p.out())
		_ = w.Write([]string{"line", "identity", "action", "error"})
		for _, r := range rows {
			_ = w.Write([]string{lineOf(r.Line), r.Identity, r.Action, r.Error})
		}
		return w.Flush()
	}
	tw := tabwriter.NewWriter(p.out(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tIDENTITY\tACTION\tERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", lineOf(r.Line), r.Identity, r.Action, r.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	what := "of the import"
	if imp.Status.Phase == v1alpha1.PhasePreviewReady {
		what = "planned by the preview"
	}
	fmt.Fprintf(p.out(), "%d rows %s (unchanged rows are not listed; line - is a user the file does not list)\n", len(rows), what)
	for _, n := range notes {
		fmt.Fprintln(p.out(), n)
	}
	return nil
}

// outcomeOf returns the outcome of a report Secret's data, plain or
// compressed, and its key; no key when there is none yet.
func outcomeOf(data map[string][]byte) (string, []byte, error) {
	if b, ok := data[runcontract.ReportOutcomeKey]; ok {
		return runcontract.ReportOutcomeKey, b, nil
	}
	z, ok := data[runcontract.ReportOutcomeGzipKey]
	if !ok {
		return "", nil, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return runcontract.ReportOutcomeGzipKey, nil, err
	}
	b, err := io.ReadAll(zr)
	return runcontract.ReportOutcomeGzipKey, b, err
}

func lineOf(l int64) string {
	if l == 0 {
		return "-"
	}
	return strconv.FormatInt(l, 10)
}

// Codes prints the import's recovery codes as one CSV, from every codes
// Secret status names.
//
// Codes are passwords: to a terminal they are printed only with show;
// file, when set, receives them instead, created with mode 0600.
func (p *Plugin) Codes(ctx context.Context, name string, show bool, file string) (err error) {
	imp, err := p.getImport(ctx, name)
	if err != nil {
		return err
	}
	out := p.out()
	switch {
	case file != "":
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		// An existing file keeps its mode on open: make it private.
		if err := f.Chmod(0o600); err != nil {
			return err
		}
		out = f
	case p.Terminal && !show:
		return refuse("the recovery codes of UserImport %q are passwords: add --show to print them to this terminal, or write them to a file with -o FILE (mode 0600)", name)
	}
	rc := imp.Status.RecoveryCodes
	if rc == nil || len(rc.Secrets) == 0 {
		if !imp.Spec.RecoveryCodes.Enabled() {
			return refuse("UserImport %q gives no recovery codes (spec.recoveryCodes.generate is not set)", name)
		}
		return refuse("UserImport %q has given no recovery codes yet (it is %s)", name, phaseOf(imp))
	}
	fmt.Fprintln(out, "identity,code,expires")
	for _, sn := range rc.Secrets {
		var s corev1.Secret
		if err := p.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: sn}, &s); err != nil {
			return p.apiError(err, "get", "secrets", sn)
		}
		data := s.Data[runcontract.CodesKey]
		// Each Secret starts with the header; print it once.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
		if _, err := out.Write(data); err != nil {
			return err
		}
	}
	if file != "" {
		fmt.Fprintf(p.out(), "wrote the recovery codes of UserImport %s to %s (mode 0600)\n", name, file)
	}
	return nil
}
