package etcdstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
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
// random addresses. The allocator, in block mode, claims blocks as it
// goes. The pool filling up must not slow it down.
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
			a, err := lease.NewAllocator(context.Background(), s, lease.Options{Pools: []*lease.Pool{p}, Blocks: true,
				MaxBatch: etcdstore.MaxBatch, OnShort: s.Short, ShortBelow: etcdstore.ShortBelow})
			if err != nil {
				b.Fatal(err)
			}
			s.Start(a)
			defer a.Close()
			for deadline := time.Now().Add(20 * time.Second); len(a.OwnedBlocks()) == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("no block claimed")
				}
			}
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
		})
	}
}
