package lease_test

import (
	"context"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// TestLinger: with Options.Linger the first write after a quiet spell is
// committed at once; later ones wait for the next round, which starts
// early when MaxBatch writes are queued and holds them all; closing
// commits what lingers.
func TestLinger(t *testing.T) {
	pool := poolOf(rng("192.0.2.10", "192.0.2.200"))
	st := leasetest.New()
	a, err := lease.NewAllocator(context.Background(), st, lease.Options{
		Pools: []*lease.Pool{pool}, MaxBatch: 3, Linger: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			a.Close()
		}
	}()
	wait := func(ch chan error, what string) {
		t.Helper()
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not committed within 10 s", what)
		}
	}
	bind := func(i int) chan error {
		t.Helper()
		req := client(i, pool)
		addr, err := a.Offer(req)
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan error, 1)
		if err := a.Commit(req, addr, time.Hour, func(_ lease.Lease, err error) { ch <- err }); err != nil {
			t.Fatal(err)
		}
		return ch
	}

	wait(bind(0), "the first write")
	puts := st.Puts()

	// The next round may start an hour after the first: two writes wait.
	w1, w2 := bind(1), bind(2)
	select {
	case <-w1:
		t.Fatal("a write was committed before the linger passed, with the batch not full")
	case <-w2:
		t.Fatal("a write was committed before the linger passed, with the batch not full")
	case <-time.After(300 * time.Millisecond):
	}
	if n := st.Puts(); n != puts {
		t.Fatalf("%d puts while lingering, want none", n-puts)
	}
	// A third fills the batch: all three in one Put, now.
	w3 := bind(3)
	wait(w1, "write 1")
	wait(w2, "write 2")
	wait(w3, "write 3")
	if n := st.Puts(); n != puts+1 {
		t.Fatalf("a full batch took %d puts, want 1", n-puts)
	}
	if len(st.Records()) != 4 {
		t.Fatalf("%d records stored, want 4", len(st.Records()))
	}

	// Closing does not wait out the linger: what is queued is written.
	w4 := bind(4)
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	closed = true
	wait(w4, "write 4 at Close")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the linger")
	}
	if len(st.Records()) != 5 {
		t.Fatalf("%d records stored after Close, want 5", len(st.Records()))
	}
}
