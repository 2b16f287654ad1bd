package apivalidate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

const directory = `{"apiVersion":"userimport.dev/v1alpha1","kind":"UserDirectory","metadata":{"name":"d"},
 "spec":{"identityAttribute":"userName","execution":%s,"scim":{"url":%q}}}`

const userImport = `{"apiVersion":"userimport.dev/v1alpha1","kind":"UserImport","metadata":{"name":"i"},
 "spec":{"directoryRef":{"name":"d"},"source":%s,"mode":"Full","missingUsers":%q,
 "mapping":[{"attribute":"userName","column":"email","identity":true}]}}`

const schedule = `{"apiVersion":"userimport.dev/v1alpha1","kind":"ImportSchedule","metadata":{"name":"s"},
 "spec":{"schedule":"30 3 * * *","skipIfUnchanged":true,"successfulHistoryLimit":%d,
 "template":{"spec":{"directoryRef":{"name":"d"},"source":{"configMap":{"name":"c","key":"k"}},
 "mapping":[{"attribute":"userName","column":"email","identity":true}]}}}}`

func TestDecodeAppliesTheCRDRules(t *testing.T) {
	cases := []struct {
		name, kind, doc string
		want            []string // "" : valid
	}{
		{"valid directory", "UserDirectory", sprintf(directory, `{"batchSize":100}`, "https://idp.example/scim/v2"), nil},
		{"negative batch size", "UserDirectory", sprintf(directory, `{"batchSize":-1}`, "https://idp.example"), []string{"spec.execution.batchSize", "greater than or equal to 1"}},
		{"huge concurrency", "UserDirectory", sprintf(directory, `{"concurrency":100000}`, "https://idp.example"), []string{"spec.execution.concurrency", "less than or equal to 64"}},
		{"negative rate limit", "UserDirectory", sprintf(directory, `{"rateLimit":-3}`, "https://idp.example"), []string{"spec.execution.rateLimit"}},
		{"url without host", "UserDirectory", sprintf(directory, `{}`, "http://"), []string{"spec.scim.url"}},
		{"valid import", "UserImport", sprintf(userImport, `{"configMap":{"name":"c","key":"k"}}`, "Deactivate"), nil},
		{"unknown missingUsers", "UserImport", sprintf(userImport, `{"configMap":{"name":"c","key":"k"}}`, "Sometimes"), []string{"spec.missingUsers", "Sometimes"}},
		{"two sources", "UserImport", sprintf(userImport, `{"configMap":{"name":"c","key":"k"},"secret":{"name":"s","key":"k"}}`, "Ignore"), []string{"spec.source", "exactly one of"}},
		{"source url without host", "UserImport", sprintf(userImport, `{"http":{"url":"http://"}}`, "Ignore"), []string{"spec.source.http.url"}},
		// A CEL rule that reads an integer field sees an integer, as in the
		// API server.
		{"integer in a rule", "ImportSchedule", sprintf(schedule, 3), nil},
		{"integer in a rule refused", "ImportSchedule", sprintf(schedule, 0), []string{"successfulHistoryLimit: 0 deletes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out any = &v1alpha1.UserDirectory{}
			switch c.kind {
			case "UserImport":
				out = &v1alpha1.UserImport{}
			case "ImportSchedule":
				out = &v1alpha1.ImportSchedule{}
			}
			err := Decode(c.kind, []byte(c.doc), out)
			if c.want == nil {
				if err != nil {
					t.Fatalf("valid object refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid object accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestDecodeDefaults(t *testing.T) {
	var d v1alpha1.UserDirectory
	if err := Decode("UserDirectory", []byte(sprintf(directory, `{}`, "https://idp.example")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Execution.Concurrency == 0 || d.Spec.Execution.RequestTimeoutSeconds == 0 {
		t.Fatalf("execution defaults not applied: %+v", d.Spec.Execution)
	}
}

func sprintf(format string, args ...any) string {
	return strings.TrimSpace(fmt.Sprintf(format, args...))
}
