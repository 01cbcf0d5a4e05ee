package tftp

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"pxed/internal/uring"
)

// The wait policy of a worker, on a real ring: coalescing when busy,
// spinning for a lone transfer, and backing off when spinning finds nothing.
func TestRingWaitPolicy(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := uring.New(8)
	if err != nil {
		if errors.Is(err, uring.ErrUnsupported) && os.Getenv("PXED_E2E") != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer r.Close()
	w := &ringWorker{ring: r}

	w.active, w.rate = ringSpinMax+1, ringBusyRate+1
	if mw, spun := w.waitPolicy(); mw != ringMinWait || spun {
		t.Errorf("busy worker: minWait %v spun %v, want %v false", mw, spun, ringMinWait)
	}
	w.rate = ringBusyRate - 1
	if mw, spun := w.waitPolicy(); mw != 0 || spun {
		t.Errorf("many quiet transfers: minWait %v spun %v, want 0 false", mw, spun)
	}
	w.active = 0
	if _, spun := w.waitPolicy(); spun {
		t.Error("no transfers: spun")
	}

	// One transfer and nothing arriving: each spin fails and the worker
	// skips 1, 3, 7, ... waits before it spins again.
	w.active = 1
	for fails := 1; fails <= 3; fails++ {
		w.now = time.Now()
		start := time.Now()
		if _, spun := w.waitPolicy(); spun {
			t.Fatal("spin found a completion in an empty ring")
		}
		if el := time.Since(start); el < ringSpin {
			t.Errorf("spin %d gave up after %v, before %v", fails, el, ringSpin)
		}
		if want := 1<<fails - 1; w.spinSkip != want {
			t.Fatalf("after %d failed spins: skip %d waits, want %d", fails, w.spinSkip, want)
		}
		for range w.spinSkip {
			start := time.Now()
			w.waitPolicy()
			if el := time.Since(start); el >= ringSpin {
				t.Errorf("a skipped wait spun for %v", el)
			}
		}
	}
	// A completion within the spin: found, and the backoff resets.
	uring.PrepNop(r.SQE(), 1)
	w.now = time.Now()
	if _, spun := w.waitPolicy(); !spun {
		t.Error("spin missed a completion")
	}
	if w.spinFails != 0 || w.spinSkip != 0 {
		t.Errorf("after a successful spin: fails %d skip %d, want 0 0", w.spinFails, w.spinSkip)
	}
}
