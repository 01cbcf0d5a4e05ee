package lease_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// benchExchanges runs b.N DISCOVER+REQUEST exchanges (Offer, then Commit and
// wait for durability) with up to inflight of them waiting for the disk at
// once, as a server does. Clients cycle over a /16 worth of keys, so after
// the first pass the exchanges are renewals.
func benchExchanges(b *testing.B, store lease.Store, inflight int) {
	benchRun(b, store, inflight, false)
}

// benchRun is benchExchanges; with random, the store is first filled with
// a /16 of bound leases (untimed) and the timed exchanges are renewals by
// clients in random order, the worst case for the B+tree (every batch
// touches pages all over the file).
func benchRun(b *testing.B, store lease.Store, inflight int, random bool) {
	p := poolOf(rng("10.0.0.1", "10.0.255.254"))
	a, err := lease.NewAllocator(context.Background(), store, lease.Options{Pools: []*lease.Pool{p}})
	if err != nil {
		b.Fatal(err)
	}
	const clients = 60000
	reqs := make([]lease.Request, clients)
	for i := range reqs {
		reqs[i] = client(i, p)
	}
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	done := func(_ lease.Lease, err error) {
		if err != nil {
			mu.Lock()
			firstErr = err
			mu.Unlock()
		}
		<-sem
		wg.Done()
	}
	if random {
		var wg sync.WaitGroup
		for _, r := range reqs {
			ip, err := a.Offer(r)
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			if err := a.Commit(r, ip, time.Hour, func(lease.Lease, error) { wg.Done() }); err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
	}
	st0 := a.Stats()
	rnd := rand.New(rand.NewPCG(1, 1))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		r := reqs[i%clients]
		if random {
			r = reqs[rnd.IntN(clients)]
		}
		ip, err := a.Offer(r)
		if err != nil {
			b.Fatal(err)
		}
		sem <- struct{}{}
		wg.Add(1)
		if err := a.Commit(r, ip, time.Hour, done); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	st := a.Stats()
	if err := a.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "exchanges/s")
	b.ReportMetric(float64(st.Writes-st0.Writes)/float64(max(st.Batches-st0.Batches, 1)), "leases/txn")
}

func BenchmarkExchangeBolt(b *testing.B) {
	for _, inflight := range []int{64, 1024} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			benchExchanges(b, openBolt(b, filepath.Join(b.TempDir(), "leases.db")), inflight)
		})
	}
}

func BenchmarkRenewRandomBolt(b *testing.B) {
	benchRun(b, openBolt(b, filepath.Join(b.TempDir(), "leases.db")), 1024, true)
}

// BenchmarkExchangeMemory is the allocator's own cost: the store does no I/O.
func BenchmarkExchangeMemory(b *testing.B) {
	benchExchanges(b, leasetest.New(), 1024)
}
