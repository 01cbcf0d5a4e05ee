package lease_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// memEnv is an allocator on a leasetest.Store, which checks revisions like a
// shared backend and can fail or block writes.
func memEnv(t *testing.T, pools ...*lease.Pool) (*lease.Allocator, *leasetest.Store, *clock) {
	t.Helper()
	s := leasetest.New()
	c := newClock()
	a, err := lease.NewAllocator(context.Background(), s, lease.Options{Pools: pools, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, s, c
}

type result struct {
	l   lease.Lease
	err error
}

func commitAsync(t *testing.T, a *lease.Allocator, r lease.Request, addr string, d time.Duration) <-chan result {
	t.Helper()
	ch := make(chan result, 1)
	if err := a.Commit(r, ip(addr), d, func(l lease.Lease, err error) { ch <- result{l, err} }); err != nil {
		t.Fatalf("Commit(%s, %s): %v", r.Client, addr, err)
	}
	return ch
}

func TestFailedWriteRollsBack(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.10"))
	a, s, _ := memEnv(t, p)
	c1, c2 := client(1, p), client(2, p)

	// A new binding whose write fails disappears.
	s.FailPuts(nil, 1)
	r := <-commitAsync(t, a, c1, "10.0.0.10", time.Hour)
	if !errors.Is(r.err, leasetest.ErrInjected) {
		t.Fatalf("done got %v, want the store's error", r.err)
	}
	if l, ok := a.LeaseAt(ip("10.0.0.10")); ok {
		t.Fatalf("after a failed write LeaseAt = %+v", l)
	}
	if _, ok := a.Lookup(c1.Client); ok {
		t.Fatal("after a failed write the client has a binding")
	}
	if st := a.Stats(); st.Failures != 1 || st.Pending != 0 {
		t.Errorf("stats %+v", st)
	}
	// The address is free again, for anyone.
	if got, err := a.Offer(c2); err != nil || got != ip("10.0.0.10") {
		t.Fatalf("Offer after rollback: %v %v", got, err)
	}
	first, err := commit(a, c2, ip("10.0.0.10"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// A failed renewal leaves the durable binding as it was.
	s.FailPuts(nil, 1)
	if r := <-commitAsync(t, a, c2, "10.0.0.10", 5*time.Hour); r.err == nil {
		t.Fatal("renewal write did not fail")
	}
	if l, _ := a.LeaseAt(ip("10.0.0.10")); leasetest.Equal(l, first) != nil {
		t.Errorf("after a failed renewal: %v", leasetest.Equal(l, first))
	}

	// A failed release returns the error and the binding stays.
	s.FailPuts(nil, 1)
	if err := a.Release(c2.Client, ip("10.0.0.10")); !errors.Is(err, leasetest.ErrInjected) {
		t.Fatalf("Release with a failing store: %v", err)
	}
	if l, ok := a.Lookup(c2.Client); !ok || leasetest.Equal(l, first) != nil {
		t.Errorf("binding after a failed release: %+v %v", l, ok)
	}
	// And the store, which checks revisions, agrees with memory.
	if err := a.Release(c2.Client, ip("10.0.0.10")); err != nil {
		t.Fatalf("Release: %v", err)
	}
	recs := s.Records()
	if len(recs) != 1 || recs[0].State != lease.Released || recs[0].Client != c2.Client {
		t.Errorf("store holds %+v", recs)
	}
}

// A batch fails while later writes to the same address are queued: the later
// write stands, and is written with the right revision.
func TestFailedBatchWithQueuedWrites(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.20"))
	a, s, c := memEnv(t, p)
	c1, c2 := client(1, p), client(2, p)
	if _, err := commit(a, c1, ip("10.0.0.10"), time.Hour); err != nil {
		t.Fatal(err)
	}
	blocked, release := s.Hold()
	first := commitAsync(t, a, c1, "10.0.0.10", 2*time.Hour) // renewal, will fail
	if b := <-blocked; len(b) != 1 {
		t.Fatalf("first batch %d leases", len(b))
	}
	c.Advance(time.Second)
	second := commitAsync(t, a, c1, "10.0.0.10", 3*time.Hour) // queued behind it
	other := commitAsync(t, a, c2, "10.0.0.11", time.Hour)
	s.FailPuts(nil, 1)
	release()
	if r := <-first; r.err == nil {
		t.Fatal("first batch did not fail")
	}
	r2, r3 := <-second, <-other
	if r2.err != nil || r3.err != nil {
		t.Fatalf("second batch: %v, %v", r2.err, r3.err)
	}
	if st := a.Stats(); st.Batches != 2 || st.Failures != 1 {
		t.Errorf("stats %+v, want 2 batches (the first commit, the queued pair) and 1 failure", st)
	}
	l, ok := a.Lookup(c1.Client)
	if !ok || !l.Expiry.Equal(c.Now().Add(3*time.Hour)) || l.Rev != r2.l.Rev {
		t.Errorf("binding %+v, want the queued renewal (rev %d)", l, r2.l.Rev)
	}
	// Memory and store agree, revisions included: one more write must pass
	// the store's compare-and-swap.
	if _, err := commit(a, c1, ip("10.0.0.10"), time.Hour); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	for _, rec := range s.Records() {
		got, _ := a.LeaseAt(rec.IP)
		if err := leasetest.Equal(got, rec); err != nil {
			t.Errorf("memory vs store: %v", err)
		}
	}
}

// done runs only once the write is durable.
func TestDoneWaitsForDurability(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.20"))
	a, s, _ := memEnv(t, p)
	blocked, release := s.Hold()
	ch := commitAsync(t, a, client(1, p), "10.0.0.10", time.Hour)
	<-blocked
	select {
	case <-ch:
		t.Fatal("done ran before the write finished")
	case <-time.After(20 * time.Millisecond):
	}
	// Meanwhile memory already refuses the address to others.
	if err := a.Commit(client(2, p), ip("10.0.0.10"), time.Hour, nil); !errors.Is(err, lease.ErrUnavailable) {
		t.Errorf("Commit by another client during the write: %v", err)
	}
	release()
	if r := <-ch; r.err != nil || r.l.Rev == 0 {
		t.Fatalf("done: %+v", r)
	}
}

func TestClose(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.20"))
	a, s, _ := memEnv(t, p)
	blocked, release := s.Hold()
	ch := commitAsync(t, a, client(1, p), "10.0.0.10", time.Hour)
	<-blocked
	queued := commitAsync(t, a, client(2, p), "10.0.0.11", time.Hour)
	closed := make(chan error)
	go func() { closed <- a.Close() }()
	time.Sleep(10 * time.Millisecond)
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if r1, r2 := <-ch, <-queued; r1.err != nil || r2.err != nil {
		t.Fatalf("writes pending at Close: %v, %v", r1.err, r2.err)
	}
	if n := len(s.Records()); n != 2 {
		t.Errorf("store holds %d leases after Close, want 2", n)
	}
	if _, err := a.Offer(client(3, p)); !errors.Is(err, lease.ErrClosed) {
		t.Errorf("Offer after Close: %v", err)
	}
	if err := a.Commit(client(3, p), ip("10.0.0.12"), time.Hour, nil); !errors.Is(err, lease.ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Random operations against a store that checks revisions and sometimes
// fails: every offered address can be committed at once by its client, no
// reserved address is ever handed out, and at the end memory and store
// agree record for record.
func TestRandomOperations(t *testing.T) {
	t.Run("durable", func(t *testing.T) { randomOperations(t, false) })
	t.Run("failing writes", func(t *testing.T) { randomOperations(t, true) })
}

func randomOperations(t *testing.T, failing bool) {
	p := poolOf(rng("10.0.0.10", "10.0.0.40"), bootpRange("10.0.0.50", "10.0.0.55"))
	reserved := map[netip.Addr]bool{ip("10.0.0.12"): true, ip("10.0.0.51"): true}
	s := leasetest.New()
	c := newClock()
	var res []netip.Addr
	for r := range reserved {
		res = append(res, r)
	}
	a, err := lease.NewAllocator(context.Background(), s, lease.Options{
		Pools: []*lease.Pool{p}, Reserved: res, Now: c.Now, OfferTTL: 10 * time.Second, DeclineHold: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var pending sync.WaitGroup
	for step := range 20000 {
		r := client(rnd.IntN(60), p)
		r.BOOTP = rnd.IntN(8) == 0
		if rnd.IntN(4) == 0 {
			r.Want = netip.AddrFrom4([4]byte{10, 0, 0, byte(5 + rnd.IntN(55))})
		}
		switch op := rnd.IntN(10); {
		case op < 5:
			failures := a.Stats().Failures
			got, err := a.Offer(r)
			if errors.Is(err, lease.ErrExhausted) {
				continue
			}
			if err != nil {
				t.Fatalf("step %d: Offer: %v", step, err)
			}
			if reserved[got] {
				t.Fatalf("step %d: reserved %v offered", step, got)
			}
			if failing && rnd.IntN(3) == 0 {
				s.FailPuts(nil, 1)
			}
			pending.Add(1)
			err = a.Commit(r, got, time.Duration(1+rnd.IntN(3600))*time.Second, func(lease.Lease, error) { pending.Done() })
			if err != nil {
				pending.Done()
			}
			// A failed write rolled back in between (say a Release) may
			// legitimately take the address back.
			if err != nil && !(failing && errors.Is(err, lease.ErrUnavailable) && a.Stats().Failures != failures) {
				t.Fatalf("step %d: Commit of the address just offered (%v to %s): %v", step, got, r.Client, err)
			}
		case op < 6:
			if l, ok := a.Lookup(r.Client); ok {
				_ = a.Release(r.Client, l.IP)
			}
		case op < 7:
			if l, ok := a.Lookup(r.Client); ok && rnd.IntN(3) == 0 {
				_ = a.Decline(r.Client, l.IP)
			}
		case op < 8:
			if got, err := a.Offer(r); err == nil && rnd.IntN(4) == 0 {
				err := a.Abandon(got, c.Now().Add(time.Duration(rnd.IntN(600))*time.Second))
				if err != nil && !errors.Is(err, lease.ErrUnavailable) && !(failing && errors.Is(err, leasetest.ErrInjected)) {
					t.Fatalf("step %d: Abandon: %v", step, err)
				}
			}
		default:
			c.Advance(time.Duration(rnd.IntN(120)) * time.Second)
		}
	}
	pending.Wait()
	s.FailPuts(nil, 0)
	now := c.Now()
	for _, l := range a.List() {
		if reserved[l.IP] {
			t.Errorf("reserved %v has a record: %+v", l.IP, l)
		}
	}
	recs := s.Records()
	for _, rec := range recs {
		got, ok := a.LeaseAt(rec.IP)
		if !ok {
			t.Errorf("%v stored but unknown to the allocator", rec.IP)
			continue
		}
		if got.State == lease.Offered {
			continue // an offer over an old record
		}
		want := rec
		if want.State == lease.Bound && !want.Expiry.IsZero() && !want.Expiry.After(now) {
			want.State = lease.Expired
		}
		if err := leasetest.Equal(got, want); err != nil {
			t.Errorf("memory vs store: %v", err)
		}
	}
	st := a.Stats()
	t.Logf("%d records, stats %+v", len(recs), st)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
