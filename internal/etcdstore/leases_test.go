package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/etcdstore"
	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
	"pxed/internal/testutil/etcdtest"
)

var prefixSeq atomic.Int32

func newPrefix() etcdstore.Keys {
	return etcdstore.Keys{Prefix: fmt.Sprintf("/t%d/", prefixSeq.Add(1))}
}

// startStore starts a lease store alone (no allocator) and waits until it
// holds its etcd lease.
func startStore(t *testing.T, cli *clientv3.Client, keys etcdstore.Keys, id string) *etcdstore.Leases {
	t.Helper()
	s := etcdstore.NewLeases(cli, keys, etcdstore.LeasesOptions{ID: id, TTL: 2 * time.Second})
	s.Start(nil)
	waitFor(t, "the store holds its etcd lease", s.Up)
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: not %s", what)
		}
	}
}

// TestConformance: the etcd store honours the lease.Store contract,
// compare-and-swap included, against a real 3-member etcd.
func TestConformance(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cli := c.Client(t)
	leasetest.Conformance(t, func(t *testing.T) lease.Store {
		return startStore(t, cli, newPrefix(), "conformance")
	}, true)
}

// server is one pxed's lease side: an allocator in block mode on its own
// etcd client and store.
type server struct {
	a *lease.Allocator
	s *etcdstore.Leases
}

func newServer(t *testing.T, c *etcdtest.Cluster, keys etcdstore.Keys, id string, pool *lease.Pool) *server {
	t.Helper()
	cli := c.Client(t)
	s := etcdstore.NewLeases(cli, keys, etcdstore.LeasesOptions{ID: id, TTL: 2 * time.Second})
	a, err := lease.NewAllocator(context.Background(), s, lease.Options{
		Pools: []*lease.Pool{pool}, Blocks: true, MaxBatch: etcdstore.MaxBatch, OnShort: s.Short, ShortBelow: etcdstore.ShortBelow,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(a)
	t.Cleanup(func() { a.Close() })
	waitFor(t, id+" owns a block", func() bool { return len(a.OwnedBlocks()) > 0 })
	return &server{a: a, s: s}
}

func req(i int, pool *lease.Pool) lease.Request {
	mac := []byte{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)}
	return lease.Request{Client: lease.Key(nil, mac), MAC: mac, Pools: []*lease.Pool{pool}}
}

// bind offers and commits at a, waiting for the commit; the error is the
// commit's (or the offer's).
func bind(a *lease.Allocator, r lease.Request) (netip.Addr, error) {
	ip, err := a.Offer(r)
	if err != nil {
		return ip, err
	}
	ch := make(chan error, 1)
	if err := a.Commit(r, ip, time.Hour, func(_ lease.Lease, err error) { ch <- err }); err != nil {
		return ip, err
	}
	return ip, <-ch
}

// stored returns every lease record under keys.
func stored(t *testing.T, cli *clientv3.Client, keys etcdstore.Keys) map[netip.Addr]lease.Lease {
	t.Helper()
	s := etcdstore.NewLeases(cli, keys, etcdstore.LeasesOptions{ID: "reader"})
	ls, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Addr]lease.Lease{}
	for _, l := range ls {
		m[l.IP] = l
	}
	return m
}

// TestTwoServersOnePool: two servers bind 400 clients at once from one
// pool: no address goes to two clients, every acknowledged binding is in
// etcd as acknowledged, the servers' blocks are disjoint, and each learns
// the other's bindings.
func TestTwoServersOnePool(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	keys := newPrefix()
	pool := &lease.Pool{Ranges: []lease.Range{{Start: netip.MustParseAddr("198.18.0.10"), End: netip.MustParseAddr("198.18.3.250")}}}
	srv := []*server{newServer(t, c, keys, "a", pool), newServer(t, c, keys, "b", pool)}

	type ack struct {
		ip     netip.Addr
		client lease.ClientKey
	}
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	const clients = 400
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < clients; i += 8 {
				r := req(i, pool)
				a := srv[i%2].a
				for attempt := 0; ; attempt++ {
					ip, err := bind(a, r)
					if err == nil {
						mu.Lock()
						acks = append(acks, ack{ip, r.Client})
						mu.Unlock()
						break
					}
					if attempt == 50 {
						t.Errorf("client %d: no binding after 50 attempts: %v", i, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // a client's retransmission
				}
			}
		}()
	}
	wg.Wait()
	byIP := map[netip.Addr]lease.ClientKey{}
	for _, k := range acks {
		if o, dup := byIP[k.ip]; dup && o != k.client {
			t.Fatalf("%v acknowledged to %s and to %s", k.ip, o, k.client)
		}
		byIP[k.ip] = k.client
	}
	if len(byIP) != clients {
		t.Fatalf("%d addresses acknowledged to %d clients, want %d distinct", len(byIP), clients, clients)
	}
	recs := stored(t, c.Client(t), keys)
	for ip, cl := range byIP {
		if r := recs[ip]; r.Client != cl || r.State != lease.Bound {
			t.Fatalf("%v acknowledged to %s, etcd holds %+v", ip, cl, r)
		}
	}
	owner := map[netip.Addr]int{}
	for i, s := range srv {
		for _, b := range s.a.OwnedBlocks() {
			if o, dup := owner[b.First]; dup {
				t.Fatalf("block %v owned by servers %d and %d", b.First, o, i)
			}
			owner[b.First] = i
		}
	}
	// Each server sees the other's bindings (through the watch).
	for i := range clients {
		r := req(i, pool)
		other := srv[(i+1)%2].a
		waitFor(t, fmt.Sprintf("client %d's binding seen by the other server", i), func() bool {
			l, ok := other.Lookup(r.Client)
			return ok && byIP[l.IP] == r.Client
		})
	}
}

// TestDeadServer: a server that dies (its etcd client gone, no revoke)
// leaves its bindings: they renew at the survivor, which did not own their
// block; after the TTL its blocks are free and the survivor claims them.
func TestDeadServer(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	keys := newPrefix()
	pool := &lease.Pool{Ranges: []lease.Range{{Start: netip.MustParseAddr("198.18.0.0"), End: netip.MustParseAddr("198.18.0.127")}}}
	cliA, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sA := etcdstore.NewLeases(cliA, keys, etcdstore.LeasesOptions{ID: "a", TTL: 2 * time.Second})
	aA, err := lease.NewAllocator(context.Background(), sA, lease.Options{Pools: []*lease.Pool{pool}, Blocks: true, MaxBatch: etcdstore.MaxBatch, OnShort: sA.Short})
	if err != nil {
		t.Fatal(err)
	}
	sA.Start(aA)
	waitFor(t, "a owns a block", func() bool { return len(aA.OwnedBlocks()) > 0 })
	r := req(1, pool)
	ip, err := bind(aA, r)
	if err != nil {
		t.Fatal(err)
	}
	blockA := aA.OwnedBlocks()[0].First

	b := newServer(t, c, keys, "b", pool)
	waitFor(t, "b learns a's binding", func() bool { l, ok := b.a.Lookup(r.Client); return ok && l.IP == ip })
	// a dies: its connection to etcd goes, nothing is revoked.
	cliA.Close()
	ch := make(chan error, 1)
	if err := b.a.Commit(r, ip, time.Hour, func(_ lease.Lease, err error) { ch <- err }); err != nil {
		t.Fatalf("renewal at the survivor refused: %v", err)
	}
	if err := <-ch; err != nil {
		t.Fatalf("renewal at the survivor not written: %v", err)
	}
	if l := stored(t, c.Client(t), keys)[ip]; l.Client != r.Client {
		t.Fatalf("after the renewal etcd holds %+v", l)
	}
	// A new client at b while b is short: after a's TTL b takes a's block.
	start := time.Now()
	waitFor(t, "b owns a's block", func() bool {
		for _, o := range b.a.OwnedBlocks() {
			if o.First == blockA {
				return true
			}
		}
		bind(b.a, req(int(time.Since(start)/time.Millisecond)+100, pool)) // keep b short of addresses
		return false
	})
	t.Logf("a's block returned to b %v after a died (TTL 2 s)", time.Since(start).Round(10*time.Millisecond))
	aA.Close()
}

// TestQuorumLost: with two of three members down a server writes nothing
// and offers nothing; it says so (Up false) and resumes by itself when a
// member returns.
func TestQuorumLost(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	keys := newPrefix()
	pool := &lease.Pool{Ranges: []lease.Range{{Start: netip.MustParseAddr("198.18.0.10"), End: netip.MustParseAddr("198.18.0.250")}}}
	s := newServer(t, c, keys, "a", pool)
	if _, err := bind(s.a, req(1, pool)); err != nil {
		t.Fatal(err)
	}
	c.Kill(1)
	// A write caught by the death of the leader may time out; the client
	// retransmits, and it is written.
	start := time.Now()
	waitFor(t, "a binding with one member down", func() bool { _, err := bind(s.a, req(2, pool)); return err == nil })
	t.Logf("one member of three killed: bindings went on after %v", time.Since(start).Round(time.Millisecond))
	c.Kill(2)
	waitFor(t, "the store reports the quorum lost", func() bool { return !s.s.Up() })
	if ip, err := bind(s.a, req(3, pool)); err == nil {
		t.Fatalf("a binding (%v) was made without a quorum", ip)
	} else if !errors.Is(err, lease.ErrExhausted) && !errors.Is(err, etcdstore.ErrNoQuorum) {
		t.Fatalf("without a quorum: %v, want no offer (ErrExhausted) or ErrNoQuorum", err)
	}
	c.Restart(1, 2)
	waitFor(t, "the store is back", s.s.Up)
	waitFor(t, "bindings resume", func() bool { _, err := bind(s.a, req(4, pool)); return err == nil })
}

// TestPutRetried: a batch whose transaction was written although its
// answer was lost (a timed-out try, tried again) is success, at the
// revision it was written at; a stale write with other content is still
// a conflict.
func TestPutRetried(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	s := startStore(t, c.Client(t), newPrefix(), "retry")
	l := lease.Lease{IP: netip.MustParseAddr("198.18.0.7"), Client: "hw:52:54:00:00:00:07", State: lease.Bound,
		Start: time.Unix(1700000000, 5), Expiry: time.Unix(1700003600, 5)}
	first, err := s.Put(context.Background(), []lease.Lease{l})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Put(context.Background(), []lease.Lease{l}) // Rev 0 again: the same try
	if err != nil || again[0].Rev != first[0].Rev {
		t.Fatalf("the same batch again: %+v %v, want success at revision %d", again, err, first[0].Rev)
	}
	other := l
	other.Client = "hw:52:54:00:00:00:08"
	if _, err := s.Put(context.Background(), []lease.Lease{other}); !errors.Is(err, lease.ErrConflict) {
		t.Fatalf("a stale write of another client: %v, want ErrConflict", err)
	}
}

// TestBalance: the servers announcing a subnet split its clients, each
// answered by exactly one of them; relayed clients, clients trying for 3 s
// and a subnet one server alone serves are answered by all; when a server
// goes, the others answer its clients.
func TestBalance(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	keys := newPrefix()
	seg, other := netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")
	start := func(id string, subnets ...netip.Prefix) *etcdstore.Leases {
		s := etcdstore.NewLeases(c.Client(t), keys, etcdstore.LeasesOptions{ID: id, TTL: 2 * time.Second, Subnets: subnets})
		s.Start(nil)
		t.Cleanup(func() { s.Close() })
		waitFor(t, id+" up", s.Up)
		return s
	}
	a, b := start("a", seg), start("b", seg, other)
	mac := func(i int) []byte { return []byte{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)} }
	// Each reads the other's announcement within a second.
	waitFor(t, "a and b to split the segment", func() bool {
		for i := range 64 {
			if a.Balance(mac(i), 0, seg) == b.Balance(mac(i), 0, seg) {
				return false
			}
		}
		return true
	})
	counts := [2]int{}
	for i := range 1000 {
		ia, ib := a.Balance(mac(i), 0, seg), b.Balance(mac(i), 0, seg)
		if ia == ib {
			t.Fatalf("client %d: a answers %v, b answers %v; want exactly one", i, ia, ib)
		}
		if ia {
			counts[0]++
		} else {
			counts[1]++
		}
		if !a.Balance(mac(i), 3, seg) || !b.Balance(mac(i), 3, seg) {
			t.Fatalf("client %d trying for 3 s: not answered by both", i)
		}
		if !a.Balance(mac(i), 0, netip.Prefix{}) || !b.Balance(mac(i), 0, netip.Prefix{}) {
			t.Fatalf("client %d from nowhere known: not answered by both", i)
		}
		if !b.Balance(mac(i), 0, other) {
			t.Fatalf("client %d on b's own subnet: not answered by b", i)
		}
	}
	if counts[0] < 400 || counts[1] < 400 {
		t.Errorf("split %v of 1000 clients: too uneven", counts)
	}
	// A relay that forwards to both: heard by each (the first requests
	// are answered by both), announced, then its clients are split too.
	relay := netip.MustParsePrefix("203.0.113.1/32")
	if !a.Balance(mac(0), 0, relay) || !b.Balance(mac(0), 0, relay) {
		t.Fatal("a relay's first client, before any announcement: not answered by both")
	}
	waitFor(t, "a and b to split the relay's clients", func() bool {
		for i := range 64 {
			if a.Balance(mac(i), 0, relay) == b.Balance(mac(i), 0, relay) {
				return false
			}
		}
		return true
	})
	// A relay only a has heard from: a answers all of its clients.
	lone := netip.MustParsePrefix("203.0.113.2/32")
	for i := range 64 {
		if !a.Balance(mac(i), 0, lone) {
			t.Fatalf("client %d of a relay only a hears: not answered by a", i)
		}
	}
	b.Close() // revokes its lease: its server key goes
	waitFor(t, "a to answer every client once b is gone", func() bool {
		for i := range 100 {
			if !a.Balance(mac(i), 0, seg) {
				return false
			}
		}
		return true
	})
}
