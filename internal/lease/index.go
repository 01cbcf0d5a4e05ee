package lease

import (
	"math"
	"math/bits"
	"net/netip"
)

// never is the free time of an address that never becomes free on its own
// (an infinite binding).
const never = math.MaxInt64

// maxRangeSize bounds one range (a /8) so that its bitmap stays small (2 MiB).
const maxRangeSize = 1 << 24

// rangeState is the allocator's index of one Range.
//
// used has a bit set for every address that has an entry (it held or holds a
// lease or an offer) or is reserved. Entries are never removed, so bits are
// never cleared and everything below cursor is used: finding a never-used
// address is amortised O(1).
//
// heap orders the entries of the range that can become free by the time they
// do (freeAt). Items are not removed when an entry changes: an item is live
// while its gen equals the entry's gen; stale ones are dropped when they
// reach the top, or all at once when they outnumber the live ones.
type rangeState struct {
	start, end uint32 // inclusive
	bootp      bool
	used       []uint64
	cursor     uint32 // offset from start: every lower offset is used
	heap       []heapItem
	stale      int        // items in heap that are no longer live
	offers     offerQueue // outstanding offers, oldest first (pressure.go)
	// owned has a bit set for every address in a block this server owns
	// (Options.Blocks); nil: every address is this server's to give.
	// Below cursor, every address is used or not owned: owning a block
	// moves the cursor back to it.
	owned []uint64
	spare int // owned addresses never used (with owned)
	pool  int // index of its pool in Options.Pools
}

type heapItem struct {
	at  int64 // freeAt, Unix nanoseconds
	ip  uint32
	gen uint32
}

func newRangeState(r Range) *rangeState {
	s, e := v4(r.Start), v4(r.End)
	n := uint64(e) - uint64(s) + 1
	return &rangeState{start: s, end: e, bootp: r.BOOTP, used: make([]uint64, (n+63)/64)}
}

func (r *rangeState) contains(ip uint32) bool { return ip >= r.start && ip <= r.end }

func (r *rangeState) markUsed(ip uint32) {
	off := ip - r.start
	bit := uint64(1) << (off % 64)
	if r.used[off/64]&bit == 0 && r.owned != nil && r.owned[off/64]&bit != 0 {
		r.spare--
	}
	r.used[off/64] |= bit
}

// nextUnused returns an address of the range that was never used, advancing
// the cursor past used ones.
func (r *rangeState) nextUnused() (uint32, bool) {
	size := uint64(r.end) - uint64(r.start) + 1
	for uint64(r.cursor) < size {
		w := r.cursor / 64
		free := ^r.used[w]
		if r.owned != nil {
			free &= r.owned[w]
		}
		free >>= r.cursor % 64
		if free == 0 {
			r.cursor = (w + 1) * 64
			continue
		}
		off := uint64(r.cursor) + uint64(bits.TrailingZeros64(free))
		if off >= size {
			r.cursor = uint32(size)
			break
		}
		r.cursor = uint32(off)
		return r.start + uint32(off), true
	}
	return 0, false
}

// owns reports whether ip (in the range) is this server's to give.
func (r *rangeState) owns(ip uint32) bool {
	if r.owned == nil {
		return true
	}
	off := ip - r.start
	return r.owned[off/64]&(1<<(off%64)) != 0
}

// setOwned marks the addresses of the range in [lo, hi] owned or not.
func (r *rangeState) setOwned(lo, hi uint32, on bool) {
	lo, hi = max(lo, r.start), min(hi, r.end)
	if lo > hi {
		return
	}
	for ip := lo; ; ip++ {
		off := ip - r.start
		w, bit := off/64, uint64(1)<<(off%64)
		if (r.owned[w]&bit != 0) != on && r.used[w]&bit == 0 {
			if on {
				r.spare++
			} else {
				r.spare--
			}
		}
		if on {
			r.owned[w] |= bit
		} else {
			r.owned[w] &^= bit
		}
		if ip == hi {
			break
		}
	}
	if on && lo-r.start < r.cursor {
		r.cursor = lo - r.start
	}
}

func (r *rangeState) push(it heapItem) {
	r.heap = append(r.heap, it)
	r.up(len(r.heap) - 1)
}

func (r *rangeState) pop() {
	n := len(r.heap) - 1
	r.heap[0] = r.heap[n]
	r.heap = r.heap[:n]
	if n > 0 {
		r.down(0)
	}
}

func (r *rangeState) up(i int) {
	h := r.heap
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (r *rangeState) down(i int) {
	h := r.heap
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h[c+1].at < h[c].at {
			c++
		}
		if h[i].at <= h[c].at {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// compact drops stale items; live reports whether an item is live.
func (r *rangeState) compact(live func(heapItem) bool) {
	h := r.heap[:0]
	for _, it := range r.heap {
		if live(it) {
			h = append(h, it)
		}
	}
	clear(r.heap[len(h):])
	r.heap = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		r.down(i)
	}
	r.stale = 0
}

// v4 returns a as a uint32; a must be IPv4 (or IPv4-mapped IPv6).
func v4(a netip.Addr) uint32 {
	b := a.Unmap().As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(ip uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})
}
