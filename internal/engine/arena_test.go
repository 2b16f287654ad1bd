package engine

import (
	"fmt"
	"slices"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// TestValuesOutliveTheirChunk imports files of many chunks whose batches
// span several chunks, so that the chunks' memory is reused while changes
// taken from them wait in a batch: every created and updated user must get
// the values of its own row.
func TestValuesOutliveTheirChunk(t *testing.T) {
	const n = 40 * readChunk
	for _, mode := range []v1alpha1.ImportMode{v1alpha1.ModeFull, v1alpha1.ModeDelta} {
		t.Run(string(mode), func(t *testing.T) {
			var users []directory.User
			var rows, want []string
			for i := range n {
				id := fmt.Sprintf("user%05d", i)
				mail, title := fmt.Sprintf("mail%05d@example.org", i), fmt.Sprintf("title %05d", i)
				switch i % 3 {
				case 0: // unchanged
					users = append(users, user(id, mail, title))
				case 1: // updated
					users = append(users, user(id, mail, "old title"))
				} // 2: created
				rows = append(rows, id+","+mail+","+title+",")
				want = append(want, fmt.Sprintf("%s active=true mail=[%s] title=[%s] managed=true", id, mail, title))
			}
			d := seed(users...)
			cfg := testConfig(mode, v1alpha1.MissingIgnore)
			cfg.BatchSize = 3 * readChunk
			cfg.Concurrency = 1
			res, _, err := runOnce(t, d, cfg, file(rows...), false)
			if err != nil {
				t.Fatal(err)
			}
			if res.Counts.Failed != 0 || res.Counts.Rows != n {
				t.Fatalf("counts %+v", res.Counts)
			}
			got := state(d)
			slices.Sort(got)
			slices.Sort(want)
			for i := range want {
				if i >= len(got) || got[i] != want[i] {
					t.Fatalf("user %d: got %q, want %q", i, got[min(i, len(got)-1)], want[i])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d users, want %d", len(got), len(want))
			}
		})
	}
}
