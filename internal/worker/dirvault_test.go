package worker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/internal/engine"
)

// A run killed after recording codes, without closing its store: the
// next run finds every code recorded and none forgotten, and the key is
// the same.
func TestDirVaultKeepsCodesOfAKilledRun(t *testing.T) {
	ctx := context.Background()
	v := &DirVault{Dir: filepath.Join(t.TempDir(), "codes")}
	key, err := v.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Open(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx, []engine.IssuedCode{{Identity: "ann", Code: "A2B3C-D4E5F"}, {Identity: "=bob", Code: "G6H7J-K8M9N"}, {Identity: "cy", Code: "P2Q3R-S4T5U"}}); err != nil {
		t.Fatal(err)
	}
	st.Forget([]string{"cy"})
	if err := st.Record(ctx, []engine.IssuedCode{{Identity: "dee", Code: "V6W7X-Y8Z92"}}); err != nil {
		t.Fatal(err)
	}
	// Killed: no Close. A partial last line, as a write cut short leaves.
	f, _ := os.OpenFile(filepath.Join(v.Dir, "codes.log"), os.O_WRONLY|os.O_APPEND, 0o600)
	f.WriteString(`eve,"Z2`)
	f.Close()

	again, err := v.Key(ctx)
	if err != nil || string(again) != string(key) {
		t.Fatalf("the key changed: %v", err)
	}
	st, err = v.Open(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"ann": "A2B3C-D4E5F", "=bob": "G6H7J-K8M9N", "dee": "V6W7X-Y8Z92"} {
		if got, ok := st.Code(id); !ok || got != want {
			t.Errorf("%s: %q %v, want %q", id, got, ok, want)
		}
	}
	if _, ok := st.Code("cy"); ok {
		t.Error("a forgotten code is back")
	}
	if err := st.Close(ctx, true); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(v.Dir, "codes.csv"))
	if want := "identity,code,expires\n'=bob,G6H7J-K8M9N,\nann,A2B3C-D4E5F,\ndee,V6W7X-Y8Z92,\n"; string(data) != want {
		t.Fatalf("codes.csv:\n%s\nwant:\n%s", data, want)
	}
}
