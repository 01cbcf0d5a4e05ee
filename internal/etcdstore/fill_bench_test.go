package etcdstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/etcdstore"
	"pxed/internal/lease"
	"pxed/internal/testutil/etcdtest"
)

// BenchmarkFillEtcd is lease.BenchmarkFill's measure with leases in a real
// 3-member etcd: the cost of a new client's exchange (Offer, then Commit,
// 32 exchanges a batch, the batch waited for as a server's ACKs wait for
// their transaction) on a /16 pool pre-filled to 10, 50 and 90 % at
// random addresses, once the allocator (in block mode) has claimed its
// blocks (the claims' time is reported apart, claim-s). The pool filling
// up must not slow it down.
func BenchmarkFillEtcd(b *testing.B) {
	c := etcdtest.Start(b, etcdtest.Options{})
	const size = 65279
	base := netip.MustParseAddr("198.18.1.0").As4()
	first := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	addr := func(u uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
	}
	client := func(i int, p *lease.Pool) lease.Request {
		mac := net.HardwareAddr{0x02, 0xf1, 0x00, byte(i >> 16), byte(i >> 8), byte(i)}
		return lease.Request{Client: lease.Key(nil, mac), MAC: mac, Pools: []*lease.Pool{p}}
	}
	for _, fill := range []int{10, 50, 90} {
		b.Run(fmt.Sprintf("fill=%d", fill), func(b *testing.B) {
			keys := etcdstore.Keys{Prefix: fmt.Sprintf("/fill%d-%d/", fill, b.N)}
			n := size * fill / 100
			rnd := rand.New(rand.NewPCG(17, 1))
			seen := map[uint32]bool{}
			var pre []lease.Lease
			now := time.Now()
			for i := 0; len(pre) < n; i++ {
				u := first + rnd.Uint32N(size)
				if seen[u] {
					continue
				}
				seen[u] = true
				r := client(1<<20+i, nil)
				pre = append(pre, lease.Lease{IP: addr(u), Client: r.Client, MAC: r.MAC, State: lease.Bound, Start: now, Expiry: now.Add(12 * time.Hour)})
			}
			if _, err := etcdstore.CopyLeases(context.Background(), c.Client(b), keys, pre); err != nil {
				b.Fatal(err)
			}
			p := &lease.Pool{Ranges: []lease.Range{{Start: addr(first), End: addr(first + size - 1)}}}
			s := etcdstore.NewLeases(c.Client(b), keys, etcdstore.LeasesOptions{ID: "bench"})
			var puts, putNanos, putRecs atomic.Int64
			a, err := lease.NewAllocator(context.Background(), s, lease.Options{Pools: []*lease.Pool{p}, Blocks: true,
				MaxBatch: etcdstore.MaxBatch, OnShort: s.Short, ShortBelow: etcdstore.ShortBelow,
				OnPut: func(d time.Duration, records int, _ error) {
					puts.Add(1)
					putNanos.Add(int64(d))
					putRecs.Add(int64(records))
				}})
			if err != nil {
				b.Fatal(err)
			}
			s.Start(a)
			defer a.Close()
			// Steady state: the claimer has reached its target (the free
			// owned addresses stop growing). How long that took is
			// reported apart: at 90 % a block holds few free addresses,
			// so a server claims many more blocks for the same target.
			claimStart := time.Now()
			free, still := 0, 0
			for deadline := time.Now().Add(60 * time.Second); still < 10; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("the claimer did not settle in 60 s")
				}
				f := 0
				for _, o := range a.OwnedBlocks() {
					f += o.Free
				}
				if f > 0 && f == free {
					still++
				} else {
					free, still = f, 0
				}
			}
			blocks, claimed := len(a.OwnedBlocks()), time.Since(claimStart)
			if free := size - n; b.N > free/2 {
				b.Fatalf("b.N %d is more than half the %d free addresses: run with -benchtime %dx or less", b.N, free, free/2)
			}
			var wg sync.WaitGroup
			var failed sync.Once
			b.ResetTimer()
			for i := range b.N {
				r := client(i, p)
				var ip netip.Addr
				for {
					if ip, err = a.Offer(r); err == nil {
						break
					}
					time.Sleep(time.Millisecond) // out of owned addresses: the claimer is at it
				}
				wg.Add(1)
				if err := a.Commit(r, ip, 12*time.Hour, func(_ lease.Lease, err error) {
					if err != nil {
						failed.Do(func() { b.Error(err) })
					}
					wg.Done()
				}); err != nil {
					b.Fatal(err)
				}
				if i%32 == 31 {
					wg.Wait()
				}
			}
			wg.Wait()
			b.StopTimer()
			// ResetTimer drops metrics reported before it: all of them here.
			b.ReportMetric(float64(blocks), "blocks")
			b.ReportMetric(claimed.Seconds(), "claim-s")
			if n := puts.Load(); n > 0 {
				b.ReportMetric(float64(putNanos.Load())/float64(n)/1e6, "ms/txn")
				b.ReportMetric(float64(putRecs.Load())/float64(n), "leases/txn")
			}
		})
	}
}
