package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sort"
)

// Message types a client sends, for ClientMessage.
const (
	MsgDiscover = msgDiscover
	MsgRequest  = msgRequest
)

// ClientMessage builds a client message of type typ (MsgDiscover,
// MsgRequest) from mac with the broadcast flag set (a client that cannot
// receive unicast before it has an address, such as pxed's Xen bootloader
// on dom0), ciaddr (invalid: 0.0.0.0) and the options, in code order.
func ClientMessage(typ uint8, mac net.HardwareAddr, xid uint32, ciaddr netip.Addr, opts map[uint8][]byte) []byte {
	b := make([]byte, headerLen, headerLen+cookieLen+64)
	b[0], b[1], b[2] = opRequest, 1, byte(len(mac))
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint16(b[10:], 0x8000) // broadcast
	if ciaddr.Is4() {
		a := ciaddr.As4()
		copy(b[12:16], a[:])
	}
	copy(b[28:44], mac)
	b = append(b, magicCookie[:]...)
	b = append(b, optMessageType, 1, typ)
	codes := make([]int, 0, len(opts))
	for c := range opts {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	for _, c := range codes {
		v := opts[uint8(c)]
		for len(v) > 255 { // RFC 3396: long options are split
			b = append(b, uint8(c), 255)
			b = append(b, v[:255]...)
			v = v[255:]
		}
		b = append(b, uint8(c), byte(len(v)))
		b = append(b, v...)
	}
	return append(b, optEnd)
}
