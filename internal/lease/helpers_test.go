package lease_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
)

// clock is a fake clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func rng(start, end string) lease.Range {
	return lease.Range{Start: ip(start), End: ip(end)}
}

func bootpRange(start, end string) lease.Range {
	r := rng(start, end)
	r.BOOTP = true
	return r
}

func poolOf(ranges ...lease.Range) *lease.Pool { return &lease.Pool{Ranges: ranges} }

// openBolt opens (creating) the bolt store at path.
func openBolt(t testing.TB, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	return s
}

// env is an allocator on a real bolt file in a temporary directory.
type env struct {
	t     *testing.T
	path  string
	clock *clock
	opts  lease.Options
	a     *lease.Allocator
}

// newEnv starts an allocator over pools with opts (Pools and Now are set
// here).
func newEnv(t *testing.T, opts lease.Options, pools ...*lease.Pool) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "leases.db"), clock: newClock()}
	opts.Pools = pools
	opts.Now = e.clock.Now
	e.opts = opts
	e.start()
	t.Cleanup(func() {
		if e.a != nil {
			if err := e.a.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return e
}

func (e *env) start() {
	e.t.Helper()
	a, err := lease.NewAllocator(context.Background(), openBolt(e.t, e.path), e.opts)
	if err != nil {
		e.t.Fatalf("NewAllocator: %v", err)
	}
	e.a = a
}

// restart closes the allocator and starts a new one on the same file.
func (e *env) restart() {
	e.t.Helper()
	if err := e.a.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.a = nil
	e.start()
}

func mac(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

// client returns a request for the i-th test client in pools.
func client(i int, pools ...*lease.Pool) lease.Request {
	return lease.Request{
		Client:   lease.Key(nil, mac(i)),
		MAC:      mac(i),
		Hostname: fmt.Sprintf("host-%d", i),
		Pools:    pools,
	}
}

// commit commits and waits until the lease is durable.
func commit(a *lease.Allocator, req lease.Request, addr netip.Addr, d time.Duration) (lease.Lease, error) {
	type res struct {
		l   lease.Lease
		err error
	}
	ch := make(chan res, 1)
	if err := a.Commit(req, addr, d, func(l lease.Lease, err error) { ch <- res{l, err} }); err != nil {
		return lease.Lease{}, err
	}
	r := <-ch
	return r.l, r.err
}

// mustOffer offers and fails the test on error.
func (e *env) mustOffer(req lease.Request) netip.Addr {
	e.t.Helper()
	got, err := e.a.Offer(req)
	if err != nil {
		e.t.Fatalf("Offer(%s): %v", req.Client, err)
	}
	return got
}

// mustBind offers then commits for d, returning the address.
func (e *env) mustBind(req lease.Request, d time.Duration) netip.Addr {
	e.t.Helper()
	got := e.mustOffer(req)
	if _, err := commit(e.a, req, got, d); err != nil {
		e.t.Fatalf("Commit(%s, %v): %v", req.Client, got, err)
	}
	return got
}
