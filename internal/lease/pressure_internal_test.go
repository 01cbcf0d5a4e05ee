package lease

import (
	"context"
	"net"
	"testing"
	"time"
)

// nopStore keeps nothing: the tests here look at memory only.
type nopStore struct{}

func (nopStore) Load(context.Context) ([]Lease, error)             { return nil, nil }
func (nopStore) Put(_ context.Context, b []Lease) ([]Lease, error) { return b, nil }
func (nopStore) Close() error                                      { return nil }

// TestOfferQueueBounded: the queue of offers holds what a flood's last
// OfferTTL made at most, and under pressure about the pool's size, however
// long the flood goes on.
func TestOfferQueueBounded(t *testing.T) {
	p := &Pool{Ranges: []Range{{Start: addr(0x0a000001), End: addr(0x0a000064)}}} // 100 addresses
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, err := NewAllocator(context.Background(), nopStore{}, Options{Pools: []*Pool{p}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rs := a.ranges[0]
	longest := 0
	for i := range 200000 {
		mac := net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		if _, err := a.Offer(Request{Client: Key(nil, mac), Pools: []*Pool{p}}); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			// Some are requested, which leaves dead items in the middle.
			ip, _ := a.Offer(Request{Client: Key(nil, mac), Pools: []*Pool{p}})
			if err := a.Commit(Request{Client: Key(nil, mac), Pools: []*Pool{p}}, ip, time.Millisecond, nil); err != nil {
				t.Fatal(err)
			}
			a.Flush()
		}
		longest = max(longest, len(rs.offers.items))
		now = now.Add(100 * time.Microsecond)
	}
	t.Logf("longest offer queue: %d items (backing array %d)", longest, cap(rs.offers.items))
	if longest > 1000 {
		t.Fatalf("offer queue grew to %d items on a 100-address pool", longest)
	}
	if len(a.offers) > 100 {
		t.Fatalf("%d outstanding offers on a 100-address pool", len(a.offers))
	}
}
