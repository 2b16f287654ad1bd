package memlimit

import "testing"

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
