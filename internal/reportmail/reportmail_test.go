package reportmail

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

// A complete outcome larger than the relay takes (its SIZE) is sent cut
// to fit, with a last line that counts the rows left out, instead of
// being refused.
func TestCompleteOutcomeIsCutToTheRelaysSize(t *testing.T) {
	srv, err := mailpit.StartIn(t.TempDir(), "--max-message-size", "1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	const rows = 150000
	rnd := rand.New(rand.NewPCG(1, 2))
	w := csvsafe.NewGzipWriter(16<<20, []string{"line", "identity", "action", "error"})
	for i := range rows {
		w.Write([]string{fmt.Sprint(i + 2), fmt.Sprintf("%016x@corp.example", rnd.Uint64()), "create", ""})
	}
	z := w.Close(nil)
	if len(z) < 1<<20 {
		t.Fatalf("the outcome compresses to %d bytes, not more than the relay takes", len(z))
	}

	imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: "hr", Name: "big", UID: "u1"},
		Spec: v1alpha1.UserImportSpec{Report: v1alpha1.ReportMail{Recipients: []string{"hr-it@example.com"}}}}
	m := Message(imp, v1alpha1.PhaseCompleted, map[string][]byte{runcontract.ReportOutcomeGzipKey: z}, time.Now())
	if len(m.Attachments) != 1 || !strings.HasSuffix(m.Attachments[0].Name, ".csv.gz") {
		t.Fatalf("attachments %+v, want the compressed outcome", m.Attachments)
	}
	spec := &v1alpha1.MailRelay{Host: srv.Host, Port: int32(srv.SMTPPort), TLS: v1alpha1.MailStartTLS,
		CABundle:     &v1alpha1.SecretKeyRef{Name: "relay-ca", Key: "ca.crt"},
		AuthUsername: mailpit.User, AuthPassword: &v1alpha1.SecretKeyRef{Name: "relay", Key: "password"},
		From: "reports@example.com"}
	secrets := func(_ context.Context, name, key string) ([]byte, error) {
		if name == "relay" {
			return []byte(mailpit.Password), nil
		}
		if name == "relay-ca" {
			return srv.CAPEM, nil
		}
		return nil, keyread.NotFound("no Secret %s", name)
	}
	s := mail.NewSender(spec, secrets, 10*time.Second)
	defer s.Close()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("sending a report larger than the relay takes: %v", err)
	}
	msgs, err := srv.Messages()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages (%v)", len(msgs), err)
	}
	raw, err := srv.Raw(msgs[0].ID)
	if err != nil || len(raw) > 1<<20 {
		t.Fatalf("the message has %d bytes (%v), more than the relay's 1 MiB", len(raw), err)
	}
	d, err := srv.Detail(msgs[0].ID)
	if err != nil || len(d.Attachments) != 1 {
		t.Fatalf("detail %+v (%v)", d, err)
	}
	part, err := srv.Part(msgs[0].ID, d.Attachments[0].PartID)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(part))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	var omitted int
	if _, err := fmt.Sscanf(last[3], "%d more rows are not listed", &omitted); err != nil {
		t.Fatalf("the last line %q does not say what was left out", last)
	}
	kept := len(recs) - 2 // the header and the last line
	if kept+omitted != rows || kept < rows/4 {
		t.Fatalf("the attachment keeps %d rows and says %d are left out; the outcome has %d", kept, omitted, rows)
	}
	t.Logf("a %d-byte outcome sent as %d bytes: %d rows kept, %d left out", len(z), len(part), kept, omitted)
}
