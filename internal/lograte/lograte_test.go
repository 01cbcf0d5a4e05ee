package lograte

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var e Limiter
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at     time.Duration
		n      uint64
		logged bool
	}{
		{0, 1, true}, // the first event is logged
		{time.Second, 0, false},
		{30 * time.Second, 0, false},
		{time.Minute, 3, true}, // it stands for the two held back and itself
		{time.Minute + time.Second, 0, false},
		{3 * time.Minute, 2, true},
	} {
		n, ok := e.Tick(t0.Add(tc.at), time.Minute)
		if n != tc.n || ok != tc.logged {
			t.Errorf("event %d at +%v: Tick = %d, %v; want %d, %v", i, tc.at, n, ok, tc.n, tc.logged)
		}
	}
}
