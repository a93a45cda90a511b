package car

import (
	"testing"
	"time"
)

func TestJitteredBackoffBounds(t *testing.T) {
	for n := 1; n <= 10; n++ {
		full := min(200*time.Millisecond<<min(n-1, 4), 3*time.Second)
		for range 50 {
			if d := jitteredBackoff(n); d < full/2 || d > full {
				t.Fatalf("retry %d: backoff %v outside [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

func TestClassifyIsActionAware(t *testing.T) {
	if classify(ActionCreateSession, "ResourceNotFound.SessionNotFound") != KindLockExpired ||
		classify(ActionDestroySession, "ResourceNotFound.SessionNotFound") != KindNotFound {
		t.Fatal("SessionNotFound: lock expired on CreateSession, not found elsewhere")
	}
}
