package dhcpnet

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

func TestChecksumKnownVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		want uint16
	}{
		// RFC 1071 §3: the sum of these words is ddf2, so the checksum is
		// its complement.
		{"rfc1071", "0001f203f4f5f6f7", 0x220d},
		// The IPv4 header example of the Wikipedia "Internet checksum"
		// article, checksum field zero.
		{"wikipedia ipv4", "450000730000400040110000c0a80001c0a800c7", 0xb861},
		{"odd length", "01", 0xfeff},
		{"empty", "", 0xffff},
		{"all ones", "ffffffff", 0x0000},
	} {
		b, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatal(err)
		}
		if got := checksum(b, 0); got != tc.want {
			t.Errorf("%s: checksum = %#04x, want %#04x", tc.name, got, tc.want)
		}
	}
}

func TestChecksumFoldsLongInput(t *testing.T) {
	// 64 KiB of 0xff bytes would overflow a 32-bit sum that is never
	// folded; all-ones words sum to 0xffff, whose complement is zero.
	b := bytes.Repeat([]byte{0xff}, 1<<16)
	if got := checksum(b, 0); got != 0 {
		t.Fatalf("checksum of 64 KiB of 0xff = %#04x, want 0", got)
	}
}

// The expected datagrams were made by Scapy (python3-scapy 2.5, Debian),
// an implementation independent of this one:
//
//	raw(IP(src=..., dst=..., id=..., ttl=64, flags=0)/UDP(sport=67, dport=68)/payload)
func TestAppendIPv4UDPMatchesScapy(t *testing.T) {
	pattern := make([]byte, 300)
	for i := range pattern {
		pattern[i] = byte(i*7 + 3)
	}
	for _, tc := range []struct {
		name     string
		src, dst string
		id       uint16
		payload  []byte
		want     string
	}{
		{
			name: "odd payload", src: "192.0.2.1", dst: "192.0.2.77", id: 0x1234,
			payload: []byte("hello, dhcp"),
			want:    "45000027123400004011e443c0000201c000024d0043004400133e2c68656c6c6f2c2064686370",
		},
		{
			name: "broadcast, 300 bytes", src: "198.18.0.1", dst: "255.255.255.255", id: 0,
			payload: pattern,
			want:    "45000148000000004011b392c6120001ffffffff00430044013409a4" + hex.EncodeToString(pattern),
		},
		{
			name: "empty payload", src: "192.0.2.1", dst: "192.0.2.2", id: 0xffff,
			want: "4500001cffff00004011f6cdc0000201c00002020043004400087b53",
		},
		{
			// This payload makes the computed UDP checksum 0, which
			// must go on the wire as ffff (RFC 768).
			name: "checksum zero becomes ffff", src: "192.0.2.1", dst: "192.0.2.2", id: 1,
			payload: []byte{0x7b, 0x4f},
			want:    "4500001e000100004011f6cac0000201c000020200430044000affff7b4f",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := appendIPv4UDP(append([]byte(nil), prefix...),
				netip.MustParseAddr(tc.src).As4(), netip.MustParseAddr(tc.dst).As4(), 67, 68, tc.id, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("the bytes before the datagram changed: %q", got[:len(prefix)])
			}
			if g := hex.EncodeToString(got[len(prefix):]); g != tc.want {
				t.Fatalf("datagram\n got %s\nwant %s", g, tc.want)
			}
			// Independently of the vectors: a receiver's check sums
			// the header, checksum included, to zero.
			if c := checksum(got[len(prefix):len(prefix)+ipv4HeaderLen], 0); c != 0 {
				t.Errorf("IPv4 header does not verify: %#04x", c)
			}
		})
	}
}

func TestAppendIPv4UDPGrowsSmallBuffer(t *testing.T) {
	// A buffer too small for the datagram must not leave the headers in
	// the old array.
	small := make([]byte, 0, 4)
	got, err := appendIPv4UDP(small, [4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 77}, 67, 68, 0x1234, []byte("hello, dhcp"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "45000027123400004011e443c0000201c000024d0043004400133e2c68656c6c6f2c2064686370"
	if g := hex.EncodeToString(got); g != want {
		t.Fatalf("got %s\nwant %s", g, want)
	}
}

func TestAppendIPv4UDPTooLarge(t *testing.T) {
	max := make([]byte, maxIPv4Len-HeaderOverhead)
	if _, err := appendIPv4UDP(nil, [4]byte{}, [4]byte{}, 67, 68, 0, max); err != nil {
		t.Fatalf("largest payload: %v", err)
	}
	_, err := appendIPv4UDP(nil, [4]byte{}, [4]byte{}, 67, 68, 0, make([]byte, len(max)+1))
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("one byte more: err = %v, want a size error", err)
	}
}
