package lease_test

import (
	"errors"
	"testing"
	"time"

	"pxed/internal/lease"
)

// TestPressureFloodOfDiscovers: 10000 clients that are offered an address
// and never request it (a flood of DISCOVERs from random MACs) on a
// 100-address pool. Before, the pool was empty after 100 of them for as
// long as offers are held; now the oldest offer is reclaimed, so a real
// client arriving in the middle of the flood is offered an address, and
// takes it with its REQUEST even after the flood reclaimed it.
func TestPressureFloodOfDiscovers(t *testing.T) {
	p := poolOf(rng("10.0.0.1", "10.0.0.100"))
	e := newEnv(t, lease.Options{}, p)
	real := client(1_000_000, p)
	var realIP = ip("0.0.0.0")
	refused := 0
	for i := range 10000 {
		if i == 5000 {
			realIP = e.mustOffer(real)
		}
		if _, err := e.a.Offer(client(i, p)); err != nil {
			refused++
		}
		e.clock.Advance(time.Millisecond) // 1000 DISCOVERs a second
	}
	if refused != 0 {
		t.Fatalf("%d of 10000 DISCOVERs were refused an offer", refused)
	}
	if got := e.a.Stats().Reclaimed; got != 10000+1-100 {
		t.Errorf("%d offers reclaimed, want %d", got, 10000+1-100)
	}
	// The real client's offer went to the flood long ago; its REQUEST
	// (SELECTING: it answers our OFFER) takes the address back.
	if l, _ := e.a.LeaseAt(realIP); l.State != lease.Offered || l.Client == real.Client {
		t.Fatalf("%v: %+v, want offered to a flood client by now", realIP, l)
	}
	if err := e.a.Commit(real, realIP, time.Hour, nil); !errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("a REQUEST that does not answer our OFFER (INIT-REBOOT) for a reclaimed address: %v, want ErrUnavailable", err)
	}
	sel := real
	sel.TakeOffered = true
	if _, err := commit(e.a, sel, realIP, time.Hour); err != nil {
		t.Fatalf("the real client's SELECTING REQUEST: %v", err)
	}
	// Bound now: the flood never gets it again.
	for i := range 1000 {
		if got := e.mustOffer(client(20000+i, p)); got == realIP {
			t.Fatalf("flood client %d offered the real client's bound %v", i, got)
		}
	}
}

// TestPressureOrder: what reclaim takes and what it never takes.
func TestPressureOrder(t *testing.T) {
	p := poolOf(rng("10.0.0.1", "10.0.0.5"))
	e := newEnv(t, lease.Options{DeclineHold: time.Hour}, p)
	bound := e.mustBind(client(1, p), time.Hour)    // .1
	declined := e.mustBind(client(2, p), time.Hour) // .2
	if err := e.a.Decline(client(2, p).Client, declined); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Abandon(ip("10.0.0.3"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	first := e.mustOffer(client(3, p)) // .4
	e.clock.Advance(time.Second)
	second := e.mustOffer(client(4, p)) // .5
	e.clock.Advance(time.Second)
	for i, want := range []struct {
		got, want string
	}{
		{e.mustOffer(client(5, p)).String(), first.String()},  // oldest first
		{e.mustOffer(client(6, p)).String(), second.String()}, // then the next
		{e.mustOffer(client(7, p)).String(), first.String()},  // client 5's, now the oldest
	} {
		if want.got != want.want {
			t.Errorf("reclaim %d took %s, want %s", i, want.got, want.want)
		}
	}
	// A client's repeated DISCOVER keeps its own offer instead of taking
	// someone else's.
	if got := e.mustOffer(client(6, p)); got != second {
		t.Errorf("client 6 again: %v, want its own %v", got, second)
	}
	for _, a := range []string{bound.String(), declined.String(), "10.0.0.3"} {
		if l, _ := e.a.LeaseAt(ip(a)); l.State == lease.Offered {
			t.Errorf("%s (bound, declined or abandoned) was reclaimed: %+v", a, l)
		}
	}
	// Once both offered addresses are bound, the pool is exhausted.
	for _, c := range []int{6, 7} {
		r := client(c, p)
		r.TakeOffered = true
		got := e.mustOffer(r)
		if _, err := commit(e.a, r, got, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.a.Offer(client(8, p)); !errors.Is(err, lease.ErrExhausted) {
		t.Fatalf("everything bound or quarantined: %v, want ErrExhausted", err)
	}
	// TakeOffered never takes a bound address.
	r := client(9, p)
	r.TakeOffered = true
	if err := e.a.Commit(r, bound, time.Hour, nil); !errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("TakeOffered on a bound address: %v", err)
	}
}
