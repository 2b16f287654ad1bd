package memlimit

import (
	"runtime/debug"
	"testing"
)

// The collector's pace follows the limit: a small worker keeps its heap
// small, a large one spends less CPU collecting.
func TestGCPercentFollowsTheLimit(t *testing.T) {
	for _, c := range []struct {
		limit int64
		want  int
	}{
		{64 << 20, 100},
		{128 << 20, 100},
		{256 << 20, 200},
		{512 << 20, 400},
		{4 << 30, 400},
	} {
		if got := GCPercent(c.limit); got != c.want {
			t.Errorf("GCPercent(%d MiB) = %d, want %d", c.limit>>20, got, c.want)
		}
	}
}

// Memory held outside the heap lowers the runtime's limit by as much,
// down to a quarter of the soft limit, and gives it back when released.
func TestOutsideLowersTheLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	Set(512 << 20)
	soft := int64(512<<20) / 4 * 3
	if got := Limit(); got != soft {
		t.Fatalf("limit %d, want %d", got, soft)
	}
	Outside(100 << 20)
	if got := Limit(); got != soft-100<<20 {
		t.Fatalf("with 100 MiB outside: limit %d, want %d", got, soft-100<<20)
	}
	Outside(300 << 20)
	if got := Limit(); got != soft/4 {
		t.Fatalf("with 400 MiB outside: limit %d, want the floor %d", got, soft/4)
	}
	Outside(-400 << 20)
	if got := Limit(); got != soft {
		t.Fatalf("released: limit %d, want %d", got, soft)
	}
}
