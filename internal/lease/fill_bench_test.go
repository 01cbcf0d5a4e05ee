package lease_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// fillPool is the /16-sized pool of the fill benchmarks (65279 addresses,
// as bench/poolfill uses).
func fillPool() *lease.Pool { return poolOf(rng("198.18.1.0", "198.18.255.254")) }

const fillPoolSize = 65279

// fillClient is client i of the benchmarks: a distinct MAC per i.
func fillClient(i int, p *lease.Pool) lease.Request {
	mac := net.HardwareAddr{0x02, 0xf1, 0x00, byte(i >> 16), byte(i >> 8), byte(i)}
	return lease.Request{Client: lease.Key(nil, mac), MAC: mac, Pools: []*lease.Pool{p}}
}

// filled returns an allocator whose pool has n bindings at addresses spread
// at random (each client asks for a random free address, as a pool that has
// served for a while looks), committed and durable, and the pool.
func filled(b *testing.B, store lease.Store, n int) (*lease.Allocator, *lease.Pool) {
	b.Helper()
	p := fillPool()
	a, err := lease.NewAllocator(context.Background(), store, lease.Options{Pools: []*lease.Pool{p}, CallerCommits: true})
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(17, 1))
	first := netip.MustParseAddr("198.18.1.0").As4()
	base := uint32(first[0])<<24 | uint32(first[1])<<16 | uint32(first[2])<<8 | uint32(first[3])
	for i := range n {
		r := fillClient(i, p)
		u := base + rnd.Uint32N(fillPoolSize)
		r.Want = netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
		ip, err := a.Offer(r)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Commit(r, ip, 12*time.Hour, nil); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 {
			a.Flush()
		}
	}
	a.Flush()
	return a, p
}

// benchFill measures one DISCOVER+REQUEST exchange (Offer, Commit, and a
// Flush every batch exchanges, as the server writes when its socket
// drains) on a pool filled to fill %: of NEW clients (each allocates an
// address), or with renew, of clients already bound, in random order.
// Every (free addresses / 2) new clients the pool is refilled, untimed, so
// that utilisation stays near fill.
func benchFill(b *testing.B, fill int, renew bool, batch int, newStore func() lease.Store) {
	n := fillPoolSize * fill / 100
	budget := (fillPoolSize - n) / 2
	var a *lease.Allocator
	var p *lease.Pool
	next, used := n, 0
	setup := func() {
		if a != nil {
			if err := a.Close(); err != nil {
				b.Fatal(err)
			}
		}
		a, p = filled(b, newStore(), n)
		next, used = n, 0
	}
	setup()
	rnd := rand.New(rand.NewPCG(1, 1))
	b.ResetTimer()
	for i := range b.N {
		var r lease.Request
		if renew {
			r = fillClient(rnd.IntN(n), p)
		} else {
			if used == budget {
				b.StopTimer()
				setup()
				b.StartTimer()
			}
			r = fillClient(next, p)
			next++
			used++
		}
		ip, err := a.Offer(r)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Commit(r, ip, 12*time.Hour, nil); err != nil {
			b.Fatal(err)
		}
		if i%batch == batch-1 {
			a.Flush()
		}
	}
	a.Flush()
	b.StopTimer()
	if err := a.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFill is the cost of an exchange as the pool fills (10, 50, 90 %
// of a /16): the allocator alone (memory store), and with bbolt (a batch of
// 32 per fsynced transaction, as a server sees at a few thousand exchanges
// a second); new clients and renewals by bound clients in random order.
// The allocator must not slow down as the pool fills.
func BenchmarkFill(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) func() lease.Store
	}{
		{"memory", func(*testing.B) func() lease.Store { return func() lease.Store { return leasetest.New() } }},
		{"bolt", func(b *testing.B) func() lease.Store {
			dir, k := b.TempDir(), 0
			return func() lease.Store {
				k++
				return openBolt(b, filepath.Join(dir, fmt.Sprintf("leases-%d.db", k)))
			}
		}},
	}
	for _, st := range stores {
		for _, kind := range []string{"new", "renew"} {
			for _, fill := range []int{10, 50, 90} {
				b.Run(fmt.Sprintf("store=%s/%s/fill=%d", st.name, kind, fill), func(b *testing.B) {
					benchFill(b, fill, kind == "renew", 32, st.open(b))
				})
			}
		}
	}
}

// BenchmarkFillCommit is one fsynced bbolt transaction of batch records in
// a file holding 58,751 bindings (90 % of the pool): renewals of bindings
// at scattered addresses (each record lands on its own B+tree leaf, so a
// transaction writes about one page per record) against new bindings at
// ascending free addresses (as the allocator hands them out: a batch
// shares a few leaves). The cost per record is what decides whether a
// server's group commit keeps up: it stays ahead only while rate x
// cost per record < 1.
func BenchmarkFillCommit(b *testing.B) {
	for _, keys := range []string{"scattered", "ascending"} {
		for _, batch := range []int{8, 32, 128} {
			b.Run(fmt.Sprintf("keys=%s/batch=%d", keys, batch), func(b *testing.B) {
				n := fillPoolSize * 90 / 100
				path := filepath.Join(b.TempDir(), "leases.db")
				a, _ := filled(b, openBolt(b, path), n)
				all := a.List()
				if err := a.Close(); err != nil {
					b.Fatal(err)
				}
				free := make([]netip.Addr, 0, fillPoolSize-n)
				for u, i := netip.MustParseAddr("198.18.1.0"), 0; i < fillPoolSize; u, i = u.Next(), i+1 {
					if len(all) > 0 && all[0].IP == u {
						all = all[1:]
						continue
					}
					free = append(free, u)
				}
				bound := a.List()
				s := openBolt(b, path)
				defer s.Close()
				rnd := rand.New(rand.NewPCG(3, 3))
				now := time.Now().Round(0)
				recs := make([]lease.Lease, batch)
				next := 0
				b.ResetTimer()
				for range b.N {
					for j := range recs {
						var l lease.Lease
						if keys == "scattered" {
							l = bound[rnd.IntN(len(bound))]
						} else {
							if next == len(free) {
								b.Fatal("pool exhausted: lower -benchtime")
							}
							l = lease.Lease{IP: free[next], Client: lease.ClientKey(fmt.Sprintf("hw:new-%d", next)), State: lease.Bound}
							next++
						}
						l.Start, l.Expiry = now, now.Add(12*time.Hour)
						recs[j] = l
					}
					if keys == "scattered" {
						slices.SortFunc(recs, func(x, y lease.Lease) int { return x.IP.Compare(y.IP) })
						recs = slices.CompactFunc(recs, func(x, y lease.Lease) bool { return x.IP == y.IP })
					}
					if _, err := s.Put(context.Background(), recs); err != nil {
						b.Fatal(err)
					}
					recs = recs[:batch]
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
			})
		}
	}
}
