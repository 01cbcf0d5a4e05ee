package record

import (
	"testing"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// FuzzDecode: any bytes are either refused or decode into a lease that
// survives an encode/decode round trip; never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, Append(nil, lease.Lease{State: lease.Bound, Client: "hw:02:00:00:00:00:01", Hostname: "h"}))
	f.Add([]byte{10, 0, 0, 1}, []byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		l, err := Decode(k, v)
		if err != nil {
			return
		}
		again, err := Decode(k, Append(nil, l))
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", l, err)
		}
		if err := leasetest.Equal(again, l); err != nil {
			t.Fatalf("round trip of %x: %v", v, err)
		}
	})
}
