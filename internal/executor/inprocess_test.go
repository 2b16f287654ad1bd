package executor

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// The in-process executor runs at most its bound at a time; the other
// runs wait for a slot, and all of them finish.
func TestInProcessBoundsItsRuns(t *testing.T) {
	var running, most, done atomic.Int32
	run := func(ctx context.Context, _ RunConfig) runcontract.Outcome {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		running.Add(-1)
		done.Add(1)
		return runcontract.Outcome{Kind: runcontract.Completed}
	}
	e := NewInProcess(run, nil, 2)
	defer e.Shutdown()
	dir := &v1alpha1.UserDirectory{}
	for i := range 6 {
		imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("team-%d", i), Name: "hr"}}
		if err := e.Start(context.Background(), imp, dir, runcontract.StageImport); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for done.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if done.Load() != 6 || most.Load() != 2 {
		t.Fatalf("%d runs done, at most %d at a time; want 6, 2", done.Load(), most.Load())
	}
}
