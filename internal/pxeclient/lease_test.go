package pxeclient

import (
	"net/netip"
	"slices"
	"testing"
)

// TestLeasePrefix: the subnet a lease puts the guest in is option 1, or the
// address's class when the answer has none (or a mask that is not one).
func TestLeasePrefix(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		ip, mask string
		want     string
	}{
		{"192.0.2.50", "255.255.255.0", "192.0.2.50/24"},
		{"198.51.100.7", "255.255.255.128", "198.51.100.7/25"},
		{"198.18.3.4", "255.254.0.0", "198.18.3.4/15"},
		{"192.0.2.50", "", "192.0.2.50/24"},            // class C
		{"169.254.0.9", "", "169.254.0.9/16"},          // class B
		{"127.1.2.3", "", "127.1.2.3/8"},               // class A
		{"192.0.2.50", "255.0.255.0", "192.0.2.50/24"}, // not a mask: by class
	} {
		l := &Lease{IP: a(tc.ip)}
		if tc.mask != "" {
			l.Mask = a(tc.mask)
		}
		if got := l.Prefix(); got.String() != tc.want {
			t.Errorf("IP %s mask %q: prefix %v, want %s", tc.ip, tc.mask, got, tc.want)
		}
	}
}

// TestLeaseDNS reads option 6's addresses and ignores a trailing partial one.
func TestLeaseDNS(t *testing.T) {
	l := &Lease{Options: map[uint8][]byte{6: {192, 0, 2, 53, 198, 51, 100, 53, 1, 2}}}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("198.51.100.53")}
	if got := l.DNS(); !slices.Equal(got, want) {
		t.Fatalf("DNS %v, want %v", got, want)
	}
	if got := (&Lease{}).DNS(); len(got) != 0 {
		t.Fatalf("no option 6: DNS %v", got)
	}
}
