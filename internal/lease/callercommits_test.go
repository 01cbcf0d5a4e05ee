package lease_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"pxed/internal/lease"
)

// With CallerCommits, nothing is written until Flush, done runs on the
// flushing goroutine, and Release, Decline and Close flush by themselves.
func TestCallerCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	pool := poolOf(rng("192.0.2.10", "192.0.2.20"))
	a, err := lease.NewAllocator(context.Background(), openBolt(t, path), lease.Options{Pools: []*lease.Pool{pool}, CallerCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	req := func(n byte) lease.Request {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, n}
		return lease.Request{Client: lease.Key(nil, mac), MAC: mac, Pools: []*lease.Pool{pool}}
	}
	done := 0
	for n := byte(1); n <= 3; n++ {
		ip, err := a.Offer(req(n))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(req(n), ip, 3600e9, func(_ lease.Lease, err error) {
			if err != nil {
				t.Error(err)
			}
			done++
		}); err != nil {
			t.Fatal(err)
		}
	}
	if done != 0 || !a.Pending() {
		t.Fatalf("before Flush: %d callbacks ran, pending %v; want 0 and true", done, a.Pending())
	}
	a.Flush()
	if done != 3 || a.Pending() {
		t.Fatalf("after Flush: %d callbacks, pending %v; want 3 and false", done, a.Pending())
	}
	if st := a.Stats(); st.Batches != 1 || st.Writes != 3 {
		t.Fatalf("stats %+v: want the three leases in one batch", st)
	}
	l, _ := a.Lookup(req(1).Client)
	if err := a.Release(req(1).Client, l.IP); err != nil { // flushes itself
		t.Fatal(err)
	}
	ip4, _ := a.Offer(req(4))
	a.Commit(req(4), ip4, 3600e9, nil)
	if err := a.Close(); err != nil { // flushes the last commit
		t.Fatal(err)
	}
	b, err := lease.NewAllocator(context.Background(), openBolt(t, path), lease.Options{Pools: []*lease.Pool{pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if l, ok := b.LeaseAt(l.IP); !ok || l.State != lease.Released {
		t.Fatalf("released lease after reopen: %+v %v", l, ok)
	}
	if l, ok := b.LeaseAt(ip4); !ok || l.State != lease.Bound {
		t.Fatalf("lease committed before Close: %+v %v", l, ok)
	}
}
