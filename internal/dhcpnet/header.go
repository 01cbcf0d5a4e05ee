package dhcpnet

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// HeaderOverhead is what SendL2 adds to its payload: an IPv4 header without
// options (20 bytes) and a UDP header (8). A payload fits an interface when
// HeaderOverhead+len(payload) <= Iface.MTU.
const HeaderOverhead = ipv4HeaderLen + udpHeaderLen

// Sizes and fields of the headers SendL2 builds.
const (
	ipv4HeaderLen = 20 // no options
	udpHeaderLen  = 8
	// replyTTL is the TTL of the datagrams SendL2 builds (IPDEFTTL, as ISC
	// dhcpd uses): they reach a neighbour, but a client that forwards them
	// should not see them die on the way.
	replyTTL    = 64
	protocolUDP = 17
	maxIPv4Len  = 0xffff
)

// appendIPv4UDP appends to dst an IPv4 header (version 4, no options, TOS 0,
// no fragmentation flags, TTL 64), a UDP header and payload, with both
// checksums computed, and returns the extended slice.
func appendIPv4UDP(dst []byte, srcIP, dstIP [4]byte, srcPort, dstPort, id uint16, payload []byte) ([]byte, error) {
	total := HeaderOverhead + len(payload)
	if total > maxIPv4Len {
		return dst, fmt.Errorf("payload of %d bytes does not fit an IPv4 datagram (at most %d)", len(payload), maxIPv4Len-HeaderOverhead)
	}
	dst = slices.Grow(dst, total) // so that the appends below keep ip and udp valid
	start := len(dst)
	dst = append(dst, make([]byte, HeaderOverhead)...)
	ip := dst[start : start+ipv4HeaderLen]
	ip[0] = 4<<4 | ipv4HeaderLen/4
	ip[1] = 0 // TOS
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint16(ip[6:], 0) // flags and fragment offset
	ip[8] = replyTTL
	ip[9] = protocolUDP
	copy(ip[12:16], srcIP[:])
	copy(ip[16:20], dstIP[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))

	udp := dst[start+ipv4HeaderLen : start+HeaderOverhead]
	udpLen := udpHeaderLen + len(payload)
	binary.BigEndian.PutUint16(udp[0:], srcPort)
	binary.BigEndian.PutUint16(udp[2:], dstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	dst = append(dst, payload...)

	// The UDP checksum covers a pseudo-header (RFC 768): source and
	// destination address, protocol and UDP length, then the UDP header
	// (checksum field zero) and the payload.
	sum := sum16(srcIP[:], 0)
	sum = sum16(dstIP[:], sum)
	sum += protocolUDP + uint32(udpLen)
	csum := checksum(dst[start+ipv4HeaderLen:], sum)
	if csum == 0 {
		csum = 0xffff // zero means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(udp[6:], csum)
	return dst, nil
}

// sum16 adds b, as big-endian 16-bit words (an odd last byte padded with
// zero), to the running sum of RFC 1071. The sum is folded, so any length
// fits.
func sum16(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
		if sum > 0xffff0000 {
			sum = sum&0xffff + sum>>16
		}
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// checksum returns the Internet checksum (RFC 1071) of b, starting from
// the running sum initial: the one's complement of the one's complement
// sum.
func checksum(b []byte, initial uint32) uint16 {
	sum := sum16(b, initial)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
