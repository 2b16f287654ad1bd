package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoffGrowsAndStaysUnderTheCeiling(t *testing.T) {
	base, ceiling := 100*time.Millisecond, 5*time.Second
	for attempt := 0; attempt < 100; attempt++ {
		limit := ceiling
		if attempt < 6 {
			limit = base << attempt
		}
		for range 50 {
			if d := Backoff(attempt, base, ceiling); d <= 0 || d > limit+time.Millisecond {
				t.Fatalf("Backoff(%d) = %v, want in (0, %v]", attempt, d, limit)
			}
		}
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); err == nil || time.Since(start) > time.Second {
		t.Fatalf("Sleep on a cancelled context: %v after %v", err, time.Since(start))
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
