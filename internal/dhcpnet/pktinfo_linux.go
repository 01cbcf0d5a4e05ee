package dhcpnet

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// oobSize is room for the one control message ReadFrom asks for,
// IP_PKTINFO (unix.CmsgSpace(unix.SizeofInet4Pktinfo) is 32 bytes on 64-bit
// Linux), with slack for another.
const oobSize = 128

// parsePktinfo finds the IP_PKTINFO control message in oob, the control
// data of one recvmsg, and returns its ipi_addr (the destination address in
// the datagram's IPv4 header) and ipi_ifindex (the interface it arrived
// on). ok is false when oob has no well-formed IP_PKTINFO message. It reads
// oob in place and does not allocate.
func parsePktinfo(oob []byte) (dst netip.Addr, ifindex int, ok bool) {
	hdrLen := unix.SizeofCmsghdr
	dataOff := unix.CmsgLen(0) // the header, aligned
	for len(oob) >= hdrLen {
		// struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; }
		var msgLen uint64
		if hdrLen == 16 {
			msgLen = binary.NativeEndian.Uint64(oob)
		} else {
			msgLen = uint64(binary.NativeEndian.Uint32(oob))
		}
		if msgLen < uint64(hdrLen) || msgLen > uint64(len(oob)) {
			return netip.Addr{}, 0, false
		}
		level := int32(binary.NativeEndian.Uint32(oob[hdrLen-8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[hdrLen-4:]))
		if level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO {
			if msgLen < uint64(dataOff+unix.SizeofInet4Pktinfo) {
				return netip.Addr{}, 0, false
			}
			// struct in_pktinfo { int ipi_ifindex; struct in_addr
			// ipi_spec_dst; struct in_addr ipi_addr; }
			data := oob[dataOff:msgLen]
			ifindex = int(int32(binary.NativeEndian.Uint32(data)))
			return netip.AddrFrom4([4]byte(data[8:12])), ifindex, true
		}
		next := cmsgAlign(int(msgLen))
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}, 0, false
}

// cmsgAlign rounds n up to the alignment of control message data.
func cmsgAlign(n int) int {
	return unix.CmsgSpace(n) - unix.CmsgSpace(0)
}
