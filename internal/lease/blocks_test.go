package lease_test

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// sharedAlloc is an allocator in Options.Blocks mode over one memory
// store, as one of several servers sharing it.
func sharedAlloc(t *testing.T, st *leasetest.Store, shorts *atomic.Int32, pools ...*lease.Pool) *lease.Allocator {
	t.Helper()
	a, err := lease.NewAllocator(context.Background(), st, lease.Options{
		Pools: pools, Blocks: true, MaxBatch: 3,
		OnShort: func() { shorts.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestBlocksOfferOnlyOwned: with no block owned nothing is offered (and the
// owner hears it is short); once a block is owned, offers come from it
// only; disowning withdraws its offers.
func TestBlocksOfferOnlyOwned(t *testing.T) {
	pool := poolOf(rng("192.0.2.10", "192.0.2.200"))
	var shorts atomic.Int32
	a := sharedAlloc(t, leasetest.New(), &shorts, pool)
	if pbs := a.PoolBlocks(); len(pbs) != 1 {
		t.Fatalf("PoolBlocks = %v, want one pool", pbs)
	}
	if got := a.PoolBlocks()[0]; len(got) != 4 || got[0] != ip("192.0.2.0") || got[3] != ip("192.0.2.192") {
		t.Fatalf("PoolBlocks = %v, want the four /26 of 192.0.2.0/24", got)
	}
	if _, err := a.Offer(client(1, pool)); !errors.Is(err, lease.ErrExhausted) {
		t.Fatalf("Offer with no block owned: %v, want ErrExhausted", err)
	}
	if shorts.Load() == 0 {
		t.Fatal("OnShort not called when no owned address was free")
	}
	a.Own(ip("192.0.2.64"))
	seen := map[netip.Addr]bool{}
	for i := range 64 {
		got, err := a.Offer(client(100+i, pool))
		if err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
		if got.Compare(ip("192.0.2.64")) < 0 || got.Compare(ip("192.0.2.127")) > 0 || seen[got] {
			t.Fatalf("offer %d: %v, want a new address of 192.0.2.64/26", i, got)
		}
		seen[got] = true
	}
	if got, err := a.Offer(client(500, pool)); err == nil && (got.Compare(ip("192.0.2.64")) < 0 || got.Compare(ip("192.0.2.127")) > 0) {
		t.Fatalf("offer under pressure: %v, outside the owned block", got)
	}
	if bs := a.OwnedBlocks(); len(bs) != 1 || bs[0].First != ip("192.0.2.64") || bs[0].Free != 0 {
		t.Fatalf("OwnedBlocks = %+v, want 192.0.2.64 with none free (all offered)", bs)
	}
	a.Disown(ip("192.0.2.64"))
	if l, ok := a.LeaseAt(ip("192.0.2.64")); ok && l.State == lease.Offered {
		t.Fatalf("offer %+v kept after Disown", l)
	}
	// A block starting before the range (192.0.2.0 for .10-.63) counts
	// only the range's addresses.
	a.Own(ip("192.0.2.0"))
	if bs := a.OwnedBlocks(); len(bs) != 1 || bs[0].Free != 54 {
		t.Fatalf("OwnedBlocks = %+v, want 54 free in 192.0.2.0 (.10-.63)", bs)
	}
	got, err := a.Offer(client(1, pool))
	if err != nil || got != ip("192.0.2.10") {
		t.Fatalf("Offer after owning 192.0.2.0: %v %v, want 192.0.2.10 (the cursor went back)", got, err)
	}
}

// TestBlocksCommit: a new binding outside the owned blocks is refused with
// ErrNotOwner (no NAK); renewing a client's own binding there is not a
// claim; a binding in an owned block is written as a claim.
func TestBlocksCommit(t *testing.T) {
	pool := poolOf(rng("192.0.2.10", "192.0.2.200"))
	st := leasetest.New()
	var shorts atomic.Int32
	a := sharedAlloc(t, st, &shorts, pool)
	if err := a.Commit(client(1, pool), ip("192.0.2.70"), time.Hour, nil); !errors.Is(err, lease.ErrNotOwner) || errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("Commit outside owned blocks: %v, want ErrNotOwner (not ErrUnavailable, which NAKs)", err)
	}
	// Another server bound .70 to client 1; this one learns it.
	other := lease.Lease{IP: ip("192.0.2.70"), Client: client(1, pool).Client, State: lease.Bound, Start: time.Now(), Expiry: time.Now().Add(time.Hour)}
	out, err := st.Put(context.Background(), []lease.Lease{other})
	if err != nil {
		t.Fatal(err)
	}
	a.Apply(out[0])
	if l, ok := a.Lookup(client(1, pool).Client); !ok || l.IP != ip("192.0.2.70") || l.Rev != out[0].Rev {
		t.Fatalf("Lookup after Apply = %+v %v", l, ok)
	}
	got, err := commit(a, client(1, pool), ip("192.0.2.70"), time.Hour)
	if err != nil || got.Claim {
		t.Fatalf("renewal of the client's own binding: %+v %v, want written, not a claim", got, err)
	}
	a.Own(ip("192.0.2.0"))
	got, err = commit(a, client(2, pool), ip("192.0.2.11"), time.Hour)
	if err != nil || !got.Claim {
		t.Fatalf("new binding in an owned block: %+v %v, want written as a claim", got, err)
	}
	// A stale or equal revision is ignored.
	stale := other
	stale.Rev = 1
	stale.Client = "hw:02:00:00:00:00:99"
	a.Apply(stale)
	if l, _ := a.LeaseAt(ip("192.0.2.70")); l.Client != client(1, pool).Client {
		t.Fatalf("a stale record replaced the binding: %+v", l)
	}
}

// TestBlocksConflict: of a batch, the records another server changed are
// lost (no ACK, memory rolled back, then the other server's record
// applied); the rest of the batch is written.
func TestBlocksConflict(t *testing.T) {
	pool := poolOf(rng("192.0.2.10", "192.0.2.200"))
	st := leasetest.New()
	var shorts atomic.Int32
	a, err := lease.NewAllocator(context.Background(), st, lease.Options{Pools: []*lease.Pool{pool}, Blocks: true, CallerCommits: true, OnShort: func() { shorts.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Own(ip("192.0.2.0"))
	results := make([]error, 3)
	done := make([]bool, 3)
	for i, addr := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		if err := a.Commit(client(i, pool), ip(addr), time.Hour, func(_ lease.Lease, err error) { results[i], done[i] = err, true }); err != nil {
			t.Fatal(err)
		}
	}
	// Meanwhile another server wrote .11 for client 7 (it took the block
	// over, say).
	theirs := lease.Lease{IP: ip("192.0.2.11"), Client: client(7, pool).Client, State: lease.Bound, Start: time.Now(), Expiry: time.Now().Add(time.Hour)}
	out, err := st.Put(context.Background(), []lease.Lease{theirs})
	if err != nil {
		t.Fatal(err)
	}
	a.Apply(out[0]) // arrives while this server's write is queued: waits
	a.Flush()
	for i := range 3 {
		if !done[i] {
			t.Fatalf("write %d: done not called", i)
		}
	}
	if results[0] != nil || results[2] != nil || !errors.Is(results[1], lease.ErrConflict) {
		t.Fatalf("results %v, want only .11 lost with ErrConflict", results)
	}
	if l, _ := a.LeaseAt(ip("192.0.2.11")); l.Client != client(7, pool).Client || l.Rev != out[0].Rev {
		t.Fatalf(".11 after the conflict: %+v, want the other server's record", l)
	}
	recs := map[netip.Addr]lease.Lease{}
	for _, r := range st.Records() {
		recs[r.IP] = r
	}
	if recs[ip("192.0.2.10")].Client != client(0, pool).Client || recs[ip("192.0.2.12")].Client != client(2, pool).Client {
		t.Fatalf("store %+v: the batch's other writes are missing", recs)
	}
}

// TestBlocksMaxBatch: no Put holds more than MaxBatch leases.
func TestBlocksMaxBatch(t *testing.T) {
	pool := poolOf(rng("192.0.2.10", "192.0.2.200"))
	st := leasetest.New()
	a, err := lease.NewAllocator(context.Background(), st, lease.Options{Pools: []*lease.Pool{pool}, Blocks: true, MaxBatch: 3, CallerCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Own(ip("192.0.2.0"))
	for i := range 10 {
		got, err := a.Offer(client(i, pool))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(client(i, pool), got, time.Hour, nil); err != nil {
			t.Fatal(err)
		}
	}
	a.Flush()
	if n, p := len(st.Records()), st.Puts(); n != 10 || p != 4 {
		t.Fatalf("%d records in %d puts, want 10 in 4 (batches of at most 3)", n, p)
	}
}

// TestBlocksShortBelow: the owner hears it is short as soon as an offer
// leaves a range with fewer never-used owned addresses than ShortBelow,
// before anything runs out.
func TestBlocksShortBelow(t *testing.T) {
	pool := poolOf(rng("192.0.2.0", "192.0.2.255"))
	var shorts atomic.Int32
	a, err := lease.NewAllocator(context.Background(), leasetest.New(), lease.Options{
		Pools: []*lease.Pool{pool}, Blocks: true, ShortBelow: 10, OnShort: func() { shorts.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Own(ip("192.0.2.64"))
	for i := range 54 {
		if _, err := a.Offer(client(i, pool)); err != nil {
			t.Fatal(err)
		}
	}
	if n := shorts.Load(); n != 0 {
		t.Fatalf("short %d times with 10 never-used addresses left", n)
	}
	if _, err := a.Offer(client(54, pool)); err != nil {
		t.Fatal(err)
	}
	if shorts.Load() != 1 {
		t.Fatal("not short with 9 never-used addresses left")
	}
	// Giving the block up and owning it again counts its unused
	// addresses again: 9 left, still short.
	a.Disown(ip("192.0.2.64"))
	a.Own(ip("192.0.2.64"))
	a.Own(ip("192.0.2.128"))
	if _, err := a.Offer(client(55, pool)); err != nil {
		t.Fatal(err)
	}
	if shorts.Load() != 1 {
		t.Fatalf("short again (%d) with a fresh block owned", shorts.Load())
	}
}
