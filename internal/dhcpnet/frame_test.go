package dhcpnet

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

func TestEthernetUDPRoundTrip(t *testing.T) {
	src, _ := net.ParseMAC("00:16:3e:72:79:e3")
	bcast, _ := net.ParseMAC("ff:ff:ff:ff:ff:ff")
	for _, payload := range [][]byte{nil, {1}, bytes.Repeat([]byte{0xab}, 300)} {
		f, err := AppendEthernetUDP(nil, bcast, src, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, 7, payload)
		if err != nil {
			t.Fatal(err)
		}
		mac, s, d, p, ok := ParseEthernetUDP(f, true)
		if !ok || mac.String() != src.String() || s.String() != "0.0.0.0:68" || d.String() != "255.255.255.255:67" || !bytes.Equal(p, payload) {
			t.Fatalf("round trip: ok=%v %s %s %s %x", ok, mac, s, d, p)
		}
		// Any flipped bit in the headers or payload is caught (checksums,
		// lengths) or changes an address; never a silent wrong payload.
		for i := 12; i < len(f); i++ {
			g := append([]byte(nil), f...)
			g[i] ^= 0x10
			if _, _, _, p2, ok := ParseEthernetUDP(g, true); ok && bytes.Equal(p2, payload) && i >= ethHeaderLen+HeaderOverhead {
				t.Fatalf("bit flip at %d in the payload not detected", i)
			}
		}
	}
	if _, err := AppendEthernetUDP(nil, src[:3], src, netip.IPv4Unspecified(), netip.IPv4Unspecified(), 1, 2, 3, nil); err == nil {
		t.Error("short MAC accepted")
	}
}

func FuzzParseEthernetUDP(f *testing.F) {
	src, _ := net.ParseMAC("00:16:3e:72:79:e3")
	fr, _ := AppendEthernetUDP(nil, src, src, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 67, 68, 1, []byte("hello"))
	f.Add(fr)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, p, ok := ParseEthernetUDP(b, true)
		if ok && len(p) > len(b) {
			t.Fatal("payload longer than the frame")
		}
	})
}
