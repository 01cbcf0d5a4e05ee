package dhcpnet

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out: header, data,
// padding to the alignment. length overrides cmsg_len when not negative.
func cmsg(level, typ int32, data []byte, length int) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	l := unix.CmsgLen(len(data))
	if length >= 0 {
		l = length
	}
	if unix.SizeofCmsghdr == 16 {
		binary.NativeEndian.PutUint64(b, uint64(l))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(l))
	}
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-8:], uint32(level))
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-4:], uint32(typ))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// pktinfo returns the data of an IP_PKTINFO message.
func pktinfo(ifindex int32, specDst, addr string) []byte {
	b := make([]byte, unix.SizeofInet4Pktinfo)
	binary.NativeEndian.PutUint32(b, uint32(ifindex))
	s, a := netip.MustParseAddr(specDst).As4(), netip.MustParseAddr(addr).As4()
	copy(b[4:], s[:])
	copy(b[8:], a[:])
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParsePktinfo(t *testing.T) {
	good := pktinfo(7, "192.0.2.1", "255.255.255.255")
	ttl := cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0}, -1)
	for _, tc := range []struct {
		name    string
		oob     []byte
		dst     string // "" when ok is false
		ifindex int
	}{
		{"valid", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good, -1), "255.255.255.255", 7},
		{"after another message", cat(ttl, cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo(3, "192.0.2.1", "192.0.2.1"), -1)), "192.0.2.1", 3},
		{"before another message", cat(cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good, -1), ttl), "255.255.255.255", 7},
		{"ipi_addr, not ipi_spec_dst", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo(2, "192.0.2.1", "192.0.2.255"), -1), "192.0.2.255", 2},
		{"unpadded last message", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good, -1)[:unix.CmsgLen(len(good))], "255.255.255.255", 7},

		{"empty", nil, "", 0},
		{"shorter than a header", make([]byte, unix.SizeofCmsghdr-1), "", 0},
		{"zeroed header", make([]byte, unix.CmsgSpace(12)), "", 0},
		{"only another message", ttl, "", 0},
		{"IPv6 level", cmsg(unix.IPPROTO_IPV6, unix.IP_PKTINFO, good, -1), "", 0},
		{"cmsg_len below header", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good, unix.SizeofCmsghdr-1), "", 0},
		{"cmsg_len beyond buffer", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good, 4096), "", 0},
		{"pktinfo data too short", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good[:8], -1), "", 0},
		{"pktinfo cut by the buffer", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good, -1)[:unix.CmsgLen(len(good))-1], "", 0},
		{"second message truncated", cat(ttl, cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, good, -1)[:unix.SizeofCmsghdr+2]), "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst, ifindex, ok := parsePktinfo(tc.oob)
			if tc.dst == "" {
				if ok {
					t.Fatalf("parsed %s (ifindex %d) from malformed control data", dst, ifindex)
				}
				return
			}
			if !ok || dst != netip.MustParseAddr(tc.dst) || ifindex != tc.ifindex {
				t.Fatalf("got %v, %d, %v; want %s, %d, true", dst, ifindex, ok, tc.dst, tc.ifindex)
			}
		})
	}
}

func TestParsePktinfoHugeLength(t *testing.T) {
	if unix.SizeofCmsghdr != 16 {
		t.Skip("64-bit cmsg_len only")
	}
	b := cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo(1, "192.0.2.1", "192.0.2.1"), -1)
	binary.NativeEndian.PutUint64(b, 1<<63+16) // would wrap if converted to int first
	if dst, _, ok := parsePktinfo(b); ok {
		t.Fatalf("parsed %s from a cmsg_len of 2^63+16", dst)
	}
}

func TestParsePktinfoDoesNotAllocate(t *testing.T) {
	b := cat(cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0}, -1), cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo(1, "192.0.2.1", "192.0.2.1"), -1))
	if n := testing.AllocsPerRun(100, func() { parsePktinfo(b) }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}
