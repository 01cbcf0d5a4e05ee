package lease_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

func TestKey(t *testing.T) {
	hw := net.HardwareAddr{0x00, 0x16, 0x3E, 0x72, 0x79, 0xE3}
	tests := []struct {
		id   []byte
		want lease.ClientKey
	}{
		{nil, "hw:00:16:3e:72:79:e3"},
		{[]byte{}, "hw:00:16:3e:72:79:e3"},
		{[]byte{1, 0x00, 0x16, 0x3e, 0x72, 0x79, 0xe3}, "id:0100163e7279e3"},
	}
	for _, tt := range tests {
		if got := lease.Key(tt.id, hw); got != tt.want {
			t.Errorf("Key(%x) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestStateString(t *testing.T) {
	want := map[lease.State]string{
		lease.Offered: "offered", lease.Bound: "bound", lease.Released: "released",
		lease.Expired: "expired", lease.Declined: "declined", lease.Abandoned: "abandoned",
		0: "State(0)",
	}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("State(%d).String() = %q, want %q", s, s.String(), w)
		}
	}
}

func TestNewAllocatorRejects(t *testing.T) {
	p1 := poolOf(rng("10.0.0.10", "10.0.0.20"))
	tests := []struct {
		name string
		opts lease.Options
	}{
		{"overlap across pools", lease.Options{Pools: []*lease.Pool{p1, poolOf(rng("10.0.0.20", "10.0.0.30"))}}},
		{"overlap within a pool", lease.Options{Pools: []*lease.Pool{poolOf(rng("10.0.0.1", "10.0.0.5"), rng("10.0.0.3", "10.0.0.4"))}}},
		{"reversed", lease.Options{Pools: []*lease.Pool{poolOf(rng("10.0.0.5", "10.0.0.1"))}}},
		{"IPv6", lease.Options{Pools: []*lease.Pool{poolOf(rng("2001:db8::1", "2001:db8::5"))}}},
		{"too large", lease.Options{Pools: []*lease.Pool{poolOf(rng("10.0.0.0", "11.0.0.0"))}}},
		{"same pool twice", lease.Options{Pools: []*lease.Pool{p1, p1}}},
		{"nil pool", lease.Options{Pools: []*lease.Pool{nil}}},
		{"IPv6 reserved", lease.Options{Pools: []*lease.Pool{p1}, Reserved: []netip.Addr{ip("2001:db8::1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, err := lease.NewAllocator(context.Background(), leasetest.New(), tt.opts); err == nil {
				_ = a.Close()
				t.Fatal("NewAllocator succeeded")
			}
		})
	}
}

func TestAllocationOrder(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.12"), rng("10.0.0.20", "10.0.0.21"))
	e := newEnv(t, lease.Options{}, p)
	want := []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.20", "10.0.0.21"}
	for i, w := range want {
		if got := e.mustOffer(client(i, p)); got != ip(w) {
			t.Errorf("client %d offered %v, want %v", i, got, w)
		}
	}
	// A repeated DISCOVER gets the same offer.
	if got := e.mustOffer(client(2, p)); got != ip("10.0.0.12") {
		t.Errorf("repeated DISCOVER offered %v, want 10.0.0.12", got)
	}
	// A pool full of offers: the oldest is reclaimed (pressure.go).
	if got := e.mustOffer(client(99, p)); got != ip("10.0.0.10") {
		t.Errorf("Offer on a pool full of offers: %v, want the oldest offer's 10.0.0.10", got)
	}
	// An offer is shown by LeaseAt but is not a binding.
	if l, ok := e.a.LeaseAt(ip("10.0.0.11")); !ok || l.State != lease.Offered || l.Client != client(1).Client {
		t.Errorf("LeaseAt(offered) = %+v, %v", l, ok)
	}
	if _, ok := e.a.Lookup(client(1).Client); ok {
		t.Error("Lookup found a binding for a client that was only offered")
	}
	// A pool whose every address is bound is exhausted.
	for i := range 5 {
		e.mustBind(client(200+i, p), time.Hour)
	}
	if _, err := e.a.Offer(client(98, p)); !errors.Is(err, lease.ErrExhausted) {
		t.Errorf("Offer on a fully bound pool: %v, want ErrExhausted", err)
	}
}

func TestUnknownPool(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.12"))
	e := newEnv(t, lease.Options{}, p)
	stray := poolOf(rng("10.0.0.10", "10.0.0.12"))
	if _, err := e.a.Offer(client(1, stray)); !errors.Is(err, lease.ErrUnknownPool) {
		t.Errorf("Offer with an unregistered pool: %v", err)
	}
	if err := e.a.Commit(client(1, stray), ip("10.0.0.10"), time.Hour, nil); !errors.Is(err, lease.ErrUnknownPool) {
		t.Errorf("Commit with an unregistered pool: %v", err)
	}
}

func TestWant(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.19"))
	other := poolOf(rng("10.0.1.10", "10.0.1.19"))
	tests := []struct {
		name  string
		setup func(e *env) // client 0 is the one asking
		want  string
		get   string
	}{
		{"free", nil, "10.0.0.15", "10.0.0.15"},
		{"outside its pools", nil, "10.0.1.15", "10.0.0.10"},
		{"outside every pool", nil, "192.168.1.1", "10.0.0.10"},
		{"reserved", nil, "10.0.0.17", "10.0.0.10"},
		{"bound to another", func(e *env) {
			if _, err := commit(e.a, client(1, p), ip("10.0.0.15"), time.Hour); err != nil {
				e.t.Fatal(err)
			}
		}, "10.0.0.15", "10.0.0.10"},
		{"offered to another", func(e *env) {
			r := client(1, p)
			r.Want = ip("10.0.0.15")
			e.mustOffer(r)
		}, "10.0.0.15", "10.0.0.10"},
		{"expired binding of another", func(e *env) {
			if _, err := commit(e.a, client(1, p), ip("10.0.0.15"), time.Hour); err != nil {
				e.t.Fatal(err)
			}
			e.clock.Advance(2 * time.Hour)
		}, "10.0.0.15", "10.0.0.15"},
		{"its own expired binding", func(e *env) {
			if _, err := commit(e.a, client(0, p), ip("10.0.0.15"), time.Hour); err != nil {
				e.t.Fatal(err)
			}
			e.clock.Advance(2 * time.Hour)
		}, "10.0.0.15", "10.0.0.15"},
		{"IPv6", nil, "2001:db8::1", "10.0.0.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, lease.Options{Reserved: []netip.Addr{ip("10.0.0.17")}}, p, other)
			if tt.setup != nil {
				tt.setup(e)
			}
			r := client(0, p)
			r.Want = ip(tt.want)
			if got := e.mustOffer(r); got != ip(tt.get) {
				t.Errorf("Want %s: offered %v, want %s", tt.want, got, tt.get)
			}
		})
	}
}

func TestReservedNeverHandedOut(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.19"))
	reserved := []netip.Addr{ip("10.0.0.10"), ip("10.0.0.13"), ip("10.0.0.19")}
	e := newEnv(t, lease.Options{Reserved: reserved}, p)
	isReserved := func(a netip.Addr) bool {
		for _, r := range reserved {
			if a == r {
				return true
			}
		}
		return false
	}
	next := 0
	// Fill the pool, let every lease expire, fill it again with new clients.
	for round := range 2 {
		var got []netip.Addr
		for {
			r := client(next, p)
			next++
			a, err := e.a.Offer(r)
			if errors.Is(err, lease.ErrExhausted) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if isReserved(a) {
				t.Fatalf("round %d: reserved %v offered", round, a)
			}
			if _, err := commit(e.a, r, a, time.Hour); err != nil {
				t.Fatalf("round %d: Commit %v: %v", round, a, err)
			}
			got = append(got, a)
		}
		if len(got) != 7 {
			t.Errorf("round %d: %d addresses handed out, want 7: %v", round, len(got), got)
		}
		for _, res := range reserved {
			r := client(1000+round, p)
			r.Want = res
			if err := e.a.Commit(r, res, time.Hour, nil); !errors.Is(err, lease.ErrUnavailable) {
				t.Errorf("Commit of reserved %v: %v, want ErrUnavailable", res, err)
			}
		}
		e.clock.Advance(2 * time.Hour)
	}
}

func TestOfferExpiry(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.10"))
	e := newEnv(t, lease.Options{OfferTTL: 30 * time.Second}, p)
	a, b := client(1, p), client(2, p)
	if got := e.mustOffer(a); got != ip("10.0.0.10") {
		t.Fatalf("offered %v", got)
	}
	if err := e.a.Commit(b, ip("10.0.0.10"), time.Hour, nil); !errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("Commit by another client while the offer is held: %v", err)
	}
	e.clock.Advance(31 * time.Second)
	if l, _ := e.a.LeaseAt(ip("10.0.0.10")); l.State == lease.Offered {
		t.Fatalf("after the hold lapsed: %+v", l)
	}
	if err := e.a.Commit(b, ip("10.0.0.10"), time.Hour, nil); err != nil {
		t.Fatalf("Commit by another client after the hold lapsed: %v", err)
	}
	if err := e.a.Commit(a, ip("10.0.0.10"), time.Hour, nil); !errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("Commit by the first client after another took the address: %v", err)
	}
}

func TestLapsedOfferOfferedAgain(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.11"))
	e := newEnv(t, lease.Options{OfferTTL: 30 * time.Second}, p)
	first := e.mustOffer(client(1, p))
	e.clock.Advance(time.Hour)
	if again := e.mustOffer(client(1, p)); again != first {
		t.Errorf("after the hold lapsed the client was offered %v, want its earlier %v", again, first)
	}
}

func TestRaceForOneAddress(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.20"))
	e := newEnv(t, lease.Options{}, p)
	const n = 32
	var wins, durable atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			r := client(i, p)
			<-start
			l, err := commit(e.a, r, ip("10.0.0.15"), time.Hour)
			switch {
			case err == nil:
				wins.Add(1)
				if l.Client == r.Client {
					durable.Add(1)
				}
			case !errors.Is(err, lease.ErrUnavailable):
				t.Errorf("client %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || durable.Load() != 1 {
		t.Fatalf("%d Commits won, want 1", wins.Load())
	}
}

func TestRenew(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.20"))
	e := newEnv(t, lease.Options{}, p)
	r := client(1, p)
	got := e.mustBind(r, time.Hour)
	l1, _ := e.a.Lookup(r.Client)
	e.clock.Advance(30 * time.Minute)
	if again := e.mustOffer(r); again != got {
		t.Fatalf("bound client offered %v, want its %v", again, got)
	}
	l2, err := commit(e.a, r, got, time.Hour)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if !l2.Expiry.Equal(l1.Expiry.Add(30*time.Minute)) || l2.Rev <= l1.Rev {
		t.Errorf("renewed lease %v rev %d, was %v rev %d", l2.Expiry, l2.Rev, l1.Expiry, l1.Rev)
	}
	// Expired but still free: INIT-REBOOT gets it back.
	e.clock.Advance(2 * time.Hour)
	if l, ok := e.a.LeaseAt(got); !ok || l.State != lease.Expired {
		t.Errorf("LeaseAt after expiry: %v %v", l.State, ok)
	}
	if _, ok := e.a.Lookup(r.Client); ok {
		t.Error("Lookup returned an expired binding")
	}
	if _, err := commit(e.a, r, got, time.Hour); err != nil {
		t.Fatalf("INIT-REBOOT after expiry: %v", err)
	}
	if l, ok := e.a.Lookup(r.Client); !ok || l.IP != got || l.State != lease.Bound {
		t.Errorf("Lookup after re-commit: %+v %v", l, ok)
	}
}

func TestReleaseThenReuse(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.11"))
	e := newEnv(t, lease.Options{}, p)
	a := client(1, p)
	got := e.mustBind(a, time.Hour)
	if err := e.a.Release(client(2).Client, got); !errors.Is(err, lease.ErrNotHeld) {
		t.Errorf("Release by another client: %v", err)
	}
	if err := e.a.Release(a.Client, got); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if l, ok := e.a.LeaseAt(got); !ok || l.State != lease.Released || !l.Expiry.Equal(e.clock.Now()) {
		t.Errorf("after Release: %+v", l)
	}
	if err := e.a.Release(a.Client, got); !errors.Is(err, lease.ErrNotHeld) {
		t.Errorf("second Release: %v", err)
	}
	// The client that released gets its address back first...
	if again := e.mustOffer(a); again != got {
		t.Errorf("releasing client offered %v, want %v", again, got)
	}
	e.clock.Advance(time.Minute) // let that offer lapse
	// ...others get never-used addresses before released ones...
	if b := e.mustBind(client(2, p), time.Hour); b != ip("10.0.0.11") {
		t.Errorf("second client got %v, want the unused 10.0.0.11", b)
	}
	// ...and the released one when nothing else is left.
	if c := e.mustBind(client(3, p), time.Hour); c != got {
		t.Errorf("third client got %v, want the released %v", c, got)
	}
	if _, err := e.a.Offer(a); !errors.Is(err, lease.ErrExhausted) {
		t.Errorf("Offer once reused: %v", err)
	}
}

func TestReuseOldestFirst(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.13"))
	e := newEnv(t, lease.Options{}, p)
	for i := range 4 {
		if got := e.mustBind(client(i, p), time.Duration(4-i)*time.Hour); got != netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}) {
			t.Fatalf("client %d got %v", i, got)
		}
	}
	// Expiries: .10 at +4h, .11 at +3h, .12 at +2h, .13 at +1h.
	e.clock.Advance(5 * time.Hour)
	for i, w := range []string{"10.0.0.13", "10.0.0.12", "10.0.0.11", "10.0.0.10"} {
		if a := e.mustBind(client(10+i, p), time.Hour); a != ip(w) {
			t.Errorf("reuse %d: %v, want %s", i, a, w)
		}
	}
}

func TestDeclineQuarantine(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.10"))
	e := newEnv(t, lease.Options{DeclineHold: time.Hour}, p)
	a, b := client(1, p), client(2, p)
	got := e.mustBind(a, 24*time.Hour)
	if err := e.a.Decline(b.Client, got); !errors.Is(err, lease.ErrNotHeld) {
		t.Errorf("Decline by a client that does not hold it: %v", err)
	}
	if err := e.a.Decline(a.Client, got); err != nil {
		t.Fatalf("Decline: %v", err)
	}
	l, ok := e.a.LeaseAt(got)
	if !ok || l.State != lease.Declined || !l.Expiry.Equal(e.clock.Now().Add(time.Hour)) {
		t.Errorf("after Decline: %+v", l)
	}
	for _, r := range []lease.Request{a, b} {
		if _, err := e.a.Offer(r); !errors.Is(err, lease.ErrExhausted) {
			t.Errorf("Offer(%s) during quarantine: %v", r.Client, err)
		}
		if err := e.a.Commit(r, got, time.Hour, nil); !errors.Is(err, lease.ErrUnavailable) {
			t.Errorf("Commit(%s) during quarantine: %v", r.Client, err)
		}
	}
	if _, ok := e.a.Lookup(a.Client); ok {
		t.Error("declining client still has a binding")
	}
	e.clock.Advance(time.Hour + time.Second)
	if got2 := e.mustBind(b, time.Hour); got2 != got {
		t.Errorf("after quarantine: %v", got2)
	}
}

func TestAbandon(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.11"))
	e := newEnv(t, lease.Options{DeclineHold: time.Hour}, p)
	a := client(1, p)
	first := e.mustOffer(a)
	// The server's ping found first in use.
	if err := e.a.Abandon(first, time.Time{}); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	if l, ok := e.a.LeaseAt(first); !ok || l.State != lease.Abandoned || l.Client != "" ||
		!l.Expiry.Equal(e.clock.Now().Add(time.Hour)) {
		t.Errorf("after Abandon: %+v", l)
	}
	second := e.mustBind(a, time.Hour)
	if second == first {
		t.Fatalf("abandoned %v offered again", first)
	}
	if err := e.a.Abandon(second, e.clock.Now().Add(time.Minute)); !errors.Is(err, lease.ErrUnavailable) {
		t.Errorf("Abandon of a bound address: %v", err)
	}
	until := e.clock.Now().Add(10 * time.Minute)
	if err := e.a.Abandon(ip("10.0.0.200"), until); err != nil {
		t.Errorf("Abandon outside the pools: %v", err)
	}
	e.clock.Advance(time.Hour + time.Second)
	if got := e.mustOffer(client(2, p)); got != first {
		t.Errorf("after the quarantine: %v, want %v", got, first)
	}
}

func TestBOOTP(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.11"), bootpRange("10.0.0.20", "10.0.0.21"))
	e := newEnv(t, lease.Options{}, p)
	boot := func(i int) lease.Request {
		r := client(i, p)
		r.BOOTP = true
		return r
	}
	b1 := e.mustOffer(boot(1))
	if b1 != ip("10.0.0.20") {
		t.Errorf("BOOTP client offered %v, want 10.0.0.20", b1)
	}
	l, err := commit(e.a, boot(1), b1, time.Hour)
	if err != nil || !l.Expiry.IsZero() || l.State != lease.Bound {
		t.Fatalf("BOOTP Commit: %+v, %v; want an infinite lease", l, err)
	}
	if err := e.a.Commit(boot(2), ip("10.0.0.10"), 0, nil); !errors.Is(err, lease.ErrUnavailable) {
		t.Errorf("BOOTP Commit in a DHCP-only range: %v", err)
	}
	// DHCP clients use the plain ranges first, then the BOOTP ones.
	var dhcp []netip.Addr
	for i := 10; i < 13; i++ {
		dhcp = append(dhcp, e.mustBind(client(i, p), time.Hour))
	}
	if want := []netip.Addr{ip("10.0.0.10"), ip("10.0.0.11"), ip("10.0.0.21")}; !equalAddrs(dhcp, want) {
		t.Errorf("DHCP clients got %v, want %v", dhcp, want)
	}
	if _, err := e.a.Offer(boot(3)); !errors.Is(err, lease.ErrExhausted) {
		t.Errorf("BOOTP Offer with BOOTP ranges full: %v", err)
	}
	// A year on, the BOOTP lease still holds; the DHCP ones have expired.
	e.clock.Advance(365 * 24 * time.Hour)
	if l, ok := e.a.Lookup(boot(1).Client); !ok || l.IP != b1 {
		t.Errorf("BOOTP lease after a year: %+v %v", l, ok)
	}
	if got := e.mustOffer(boot(3)); got != ip("10.0.0.21") {
		t.Errorf("BOOTP client after expiry of the DHCP lease in the BOOTP range: %v", got)
	}
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRestart(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.30"), bootpRange("10.0.0.40", "10.0.0.41"))
	e := newEnv(t, lease.Options{DeclineHold: time.Hour}, p)
	e.mustBind(client(1, p), time.Hour)
	e.mustBind(client(2, p), 2*time.Hour)
	r := client(3, p)
	r.UUID = "00112233445566778899aabbccddeeff"
	r.Client = lease.Key([]byte{0xff, 1, 2, 3}, r.MAC)
	e.mustBind(r, time.Hour)
	rel := e.mustBind(client(4, p), time.Hour)
	if err := e.a.Release(client(4).Client, rel); err != nil {
		t.Fatal(err)
	}
	dec := e.mustBind(client(5, p), time.Hour)
	if err := e.a.Decline(client(5).Client, dec); err != nil {
		t.Fatal(err)
	}
	ab := e.mustOffer(client(6, p))
	if err := e.a.Abandon(ab, time.Time{}); err != nil {
		t.Fatal(err)
	}
	bp := client(7, p)
	bp.BOOTP = true
	e.mustBind(bp, time.Hour)
	e.mustOffer(client(8, p)) // offers are not persisted
	before := e.a.List()

	e.restart()
	after := e.a.List()
	if len(after) != len(before)-1 {
		t.Fatalf("after restart %d leases, want %d (all but the offer)", len(after), len(before)-1)
	}
	j := 0
	for _, want := range before {
		if want.State == lease.Offered {
			continue
		}
		if err := leasetest.Equal(after[j], want); err != nil {
			t.Errorf("after restart: %v", err)
		}
		j++
	}
	// Bindings still hold: a new client does not get any of them.
	for _, l := range after {
		if l.State == lease.Bound {
			got, ok := e.a.Lookup(l.Client)
			if !ok || got.IP != l.IP {
				t.Errorf("Lookup(%s) after restart: %+v %v", l.Client, got, ok)
			}
		}
	}
	seen := map[netip.Addr]bool{}
	for _, l := range after {
		seen[l.IP] = true
	}
	if got := e.mustOffer(client(9, p)); seen[got] {
		t.Errorf("new client offered %v, which has a record", got)
	}
	// The releasing client is offered its old address back.
	if got := e.mustOffer(client(4, p)); got != rel {
		t.Errorf("released client offered %v after restart, want %v", got, rel)
	}
}

func TestGroupCommit(t *testing.T) {
	p := poolOf(rng("10.1.0.1", "10.1.255.254"))
	e := newEnv(t, lease.Options{}, p)
	const workers, per = 64, 100
	n := workers * per
	var calls [workers * per]atomic.Int32
	var failed atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				k := w*per + i
				r := client(k, p)
				a, err := e.a.Offer(r)
				if err != nil {
					t.Error(err)
					return
				}
				err = e.a.Commit(r, a, time.Hour, func(l lease.Lease, err error) {
					calls[k].Add(1)
					if err != nil || l.IP != a || l.Client != r.Client || l.Rev == 0 {
						failed.Add(1)
					}
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	st := e.a.Stats()
	e.a = nil
	for k := range calls {
		if c := calls[k].Load(); c != 1 {
			t.Fatalf("done for lease %d ran %d times", k, c)
		}
	}
	if failed.Load() != 0 {
		t.Fatalf("%d done callbacks got an error or a wrong lease", failed.Load())
	}
	t.Logf("%d leases in %d transactions (%.0f per transaction)", st.Writes, st.Batches, float64(st.Writes)/float64(st.Batches))
	if st.Writes != uint64(n) || st.Records != uint64(n) || st.Pending != 0 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Batches == 0 || st.Batches > uint64(n/10) {
		t.Errorf("%d transactions for %d leases: group commit is not grouping", st.Batches, n)
	}
	e.start()
	if got := len(e.a.List()); got != n {
		t.Errorf("after reopening: %d leases, want %d", got, n)
	}
}

// A reload that adds a fixed address inside a pool stops it being offered;
// one that removes it makes it available again.
func TestSetReserved(t *testing.T) {
	p := poolOf(rng("10.0.0.10", "10.0.0.12"))
	e := newEnv(t, lease.Options{Reserved: []netip.Addr{ip("10.0.0.10")}}, p)
	offered := func() map[netip.Addr]bool {
		got := map[netip.Addr]bool{}
		for i := range 10 {
			r := client(100+i, p)
			a, err := e.a.Offer(r)
			if errors.Is(err, lease.ErrExhausted) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[a] = true
		}
		return got
	}
	if err := e.a.SetReserved([]netip.Addr{ip("10.0.0.11")}); err != nil {
		t.Fatal(err)
	}
	got := offered()
	if got[ip("10.0.0.11")] || !got[ip("10.0.0.10")] || !got[ip("10.0.0.12")] || len(got) != 2 {
		t.Errorf("after SetReserved(.11): offered %v, want .10 and .12", got)
	}
	if err := e.a.SetReserved([]netip.Addr{ip("2001:db8::1")}); err == nil {
		t.Error("SetReserved accepted an IPv6 address")
	}
}
