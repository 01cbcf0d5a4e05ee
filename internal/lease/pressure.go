package lease

import (
	"net/netip"
	"time"
)

// Pressure: when no address of a request's pools is free, Offer reclaims
// the oldest outstanding offer rather than refusing the client until that
// offer lapses. An offer only holds an address while its client decides;
// without this, a few dozen DISCOVERs from random MACs (one datagram each,
// no need to see the replies) would keep a small pool empty for as long as
// offers are held (OfferTTL, 30 s), renewing it as fast as they come.
//
// The client an address was taken from keeps its chance: a REQUEST that
// answers this server's OFFER (Request.TakeOffered) may take an address
// that is only offered to someone else. So under a flood of DISCOVERs a
// real client gets an address, and keeps it by requesting it; what a
// flood cannot be kept from doing is what any client may do: request
// addresses, one full exchange each, until the pool is bound.

// offerQueue is a range's offers in the order they were made, which is
// the order they lapse in (OfferTTL is fixed). Items are not removed when
// an offer ends (requested, replaced, dropped, lapsed); an item is live
// while its entry's offer generation is the item's and the offer runs.
// Dead items are dropped when they reach the front, so the queue holds at
// most the offers made within one OfferTTL.
type offerQueue struct {
	items []offerItem
	head  int
}

type offerItem struct {
	ip  uint32
	gen uint32
}

// trim drops dead items at the front and reuses their space once they are
// most of the slice.
func (q *offerQueue) trim(live func(offerItem) bool) {
	for q.head < len(q.items) && !live(q.items[q.head]) {
		q.items[q.head] = offerItem{}
		q.head++
	}
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 64 && 2*q.head >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
}

// liveOffer reports whether it is an offer still outstanding at now.
func (a *Allocator) liveOffer(it offerItem, now int64) bool {
	e := a.byIP[it.ip]
	return e != nil && e.offerTo != "" && e.offerGen == it.gen && e.offerUntil > now
}

// queueOffer records e's new offer (hold made it) in its range's queue.
func (a *Allocator) queueOffer(e *entry, now int64) {
	e.offerGen++
	q := &e.rs.offers
	q.trim(func(it offerItem) bool { return a.liveOffer(it, now) })
	q.items = append(q.items, offerItem{ip: e.ip, gen: e.offerGen})
}

// reclaim gives c the oldest outstanding offer in ranges, if there is one
// that nothing but the offer keeps from c.
func (a *Allocator) reclaim(ranges []*rangeState, c ClientKey, now int64) (netip.Addr, bool) {
	live := func(it offerItem) bool { return a.liveOffer(it, now) }
	for {
		var best *rangeState
		var oldest *entry
		for _, rs := range ranges {
			q := &rs.offers
			q.trim(live)
			if q.head == len(q.items) {
				continue
			}
			if e := a.byIP[q.items[q.head].ip]; oldest == nil || e.offerUntil < oldest.offerUntil {
				best, oldest = rs, e
			}
		}
		if best == nil {
			return netip.Addr{}, false
		}
		q := &best.offers
		q.items[q.head] = offerItem{}
		q.head++
		if oldest.offerTo == c || a.held(oldest, c, now) != "" {
			continue // cannot happen: the client's own offer was found before
		}
		a.stats.Reclaimed++
		a.logPressure(now)
		return a.hold(oldest, c, now), true
	}
}

// pressureLogEvery spaces the allocator's warnings about reclaimed offers.
const pressureLogEvery = time.Minute

func (a *Allocator) logPressure(now int64) {
	if _, ok := a.pressureLog.Tick(time.Unix(0, now), pressureLogEvery); !ok {
		return
	}
	a.log.Warn("lease: pool exhausted; reclaiming outstanding offers, oldest first (a flood of DISCOVERs, or a pool too small; at most one such line a minute)",
		"reclaimed-so-far", a.stats.Reclaimed)
}

// onlyOffered reports whether the one thing that keeps e's address from c
// is an outstanding offer to another client.
func (a *Allocator) onlyOffered(e *entry, c ClientKey, now int64) bool {
	return a.offeredToOther(e, c, now) && a.held(e, c, now) == ""
}

func (a *Allocator) offeredToOther(e *entry, c ClientKey, now int64) bool {
	return e.offerTo != "" && e.offerTo != c && e.offerUntil > now
}
