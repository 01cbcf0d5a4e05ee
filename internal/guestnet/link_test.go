package guestnet

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// FuzzAccept feeds arbitrary frames to the link's checks, which see every
// frame the bridge hands up for the guest's MAC: they must never panic,
// and what they accept must be a whole IPv4 packet within the frame (or
// ARP) for the guest's MAC or broadcast, with valid checksums once
// accepted (filled in for partial ones).
func FuzzAccept(f *testing.F) {
	good := udpFrame(guestMAC, net.HardwareAddr{2, 0, 0, 0, 0, 1}, server, guestAddr.Addr(), 69, 40000, []byte("data"), nil)
	f.Add(good, false)
	f.Add(good, true)
	f.Add(good[:20], false)
	f.Add(append(append([]byte{}, good[:12]...), 0x08, 0x06, 0, 1), false)
	tcp := append([]byte{}, good...)
	tcp[14+9] = 6
	f.Add(tcp, true)
	l := &link{}
	f.Fuzz(func(t *testing.T, frame []byte, partial bool) {
		in := append([]byte(nil), frame...)
		if !l.accept(in, guestMAC, partial) {
			return
		}
		if len(in) < ethHeaderLen {
			t.Fatalf("accepted a %d-byte frame", len(in))
		}
		if binary.BigEndian.Uint16(in[12:]) == etherTypeARP {
			return
		}
		p := in[ethHeaderLen:]
		hl := int(p[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(p[2:]))
		if hl < 20 || total < hl || total > len(p) {
			t.Fatalf("accepted an IPv4 packet with header %d, total %d in %d bytes", hl, total, len(p))
		}
		if !checkIPv4(p, false) {
			t.Fatalf("accepted (partial %v) a packet whose checksums do not hold afterwards", partial)
		}
	})
}

// TestAcceptFillsPartialChecksum: a UDP datagram from this host with its
// checksum left to offload (TP_STATUS_CSUMNOTREADY) gets a correct one.
func TestAcceptFillsPartialChecksum(t *testing.T) {
	frame := udpFrame(guestMAC, net.HardwareAddr{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("192.0.2.1"), guestAddr.Addr(), 69, 40000,
		[]byte("a block of a boot file"), func(ip []byte) { ip[26], ip[27] = 0x12, 0x34 }) // a pseudo-header sum, not a checksum
	l := &link{}
	if l.accept(append([]byte(nil), frame...), guestMAC, false) {
		t.Fatal("a frame with a wrong UDP checksum was accepted as complete")
	}
	if !l.accept(frame, guestMAC, true) {
		t.Fatal("a frame with its checksum pending was refused")
	}
	if !checkIPv4(frame[ethHeaderLen:], false) {
		t.Fatal("the filled-in checksum is wrong")
	}
}
