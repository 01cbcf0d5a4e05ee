package dhcp

import (
	"encoding/binary"
	"net"
	"sort"
)

// Discover builds the DHCPDISCOVER a client with hardware address mac
// would broadcast, with the given options (code -> data), for `pxed
// explain` to run through Handle without a network.
func Discover(mac net.HardwareAddr, xid uint32, opts map[uint8][]byte) []byte {
	b := make([]byte, headerLen, headerLen+cookieLen+64)
	b[0], b[1], b[2] = opRequest, 1, byte(len(mac))
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint16(b[10:], 0x8000) // broadcast: no L2 unicast needed
	copy(b[28:44], mac)
	b = append(b, magicCookie[:]...)
	b = append(b, optMessageType, 1, msgDiscover)
	codes := make([]int, 0, len(opts))
	for c := range opts {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	for _, c := range codes {
		v := opts[uint8(c)]
		b = append(b, uint8(c), byte(len(v)))
		b = append(b, v...)
	}
	return append(b, optEnd)
}
